/*
 * Unit tests for http: a libmicrohttpd server in this process on 127.0.0.1 (port 0) and a uv
 * loop driving the client. Routes:
 *   /json?i=K   200, {"i":K}, custom headers, echoes of request headers
 *   /big        200, a body of BIG_BODY bytes (over the cap used in test_body_cap)
 *   /slow       200 after up to SLOW_MS (or until the test stops the server)
 *   /500        500, "oops"
 *   /echo       POST: 200, the request body back
 * Words: a "probe" is one call's record: how often its callback fired and what it saw.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "test_assert.h"

#define BIG_BODY (1024 * 1024)
#define SLOW_MS  3000

struct server {
    struct MHD_Daemon *d;
    uint16_t port;
    atomic_int connections; /* TCP connections accepted */
    atomic_int stop;        /* set before stopping: slow handlers return */
};

static struct server srv;

/* One request's upload, for POST. */
struct upload {
    char data[4096];
    size_t len;
    int too_big;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body,
                             size_t len, const char *const *headers)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    for (const char *const *h = headers; h != NULL && h[0] != NULL; h += 2)
        MHD_add_response_header(r, h[0], h[1]);
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    char body[256];

    (void)cls;
    (void)version;
    /* Answer on the second call, once the request is complete: an answer queued on the
     * first call makes MHD close the connection, defeating keep-alive. */
    if (*con_cls == NULL && strcmp(method, "POST") != 0) {
        *con_cls = &srv;
        return MHD_YES;
    }
    if (strcmp(method, "POST") == 0) {
        struct upload *up = *con_cls;

        if (up == NULL) {
            up = calloc(1, sizeof(*up));
            if (up == NULL)
                return MHD_NO;
            *con_cls = up;
            return MHD_YES;
        }
        if (*upload_data_size > 0) {
            if (up->len + *upload_data_size > sizeof(up->data))
                up->too_big = 1;
            else {
                memcpy(up->data + up->len, upload_data, *upload_data_size);
                up->len += *upload_data_size;
            }
            *upload_data_size = 0;
            return MHD_YES;
        }
        if (strcmp(url, "/echo") != 0 || up->too_big)
            return reply(conn, 400, "bad", 3, NULL);
        return reply(conn, 200, up->data, up->len, NULL);
    }
    if (strcmp(url, "/json") == 0) {
        const char *i = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "i");
        const char *ae = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept-Encoding");
        const char *tok = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Test-Token");
        const char *ua = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "User-Agent");
        const char *const headers[] = {"X-Keap-Product-Quota-Available",
                                       "29841",
                                       "X-Custom",
                                       "padded value  ",
                                       "X-Seen-Accept-Encoding",
                                       ae ? ae : "",
                                       "X-Seen-Token",
                                       tok ? tok : "",
                                       "X-Seen-User-Agent",
                                       ua ? ua : "",
                                       NULL};

        snprintf(body, sizeof(body), "{\"i\":%s}", i ? i : "null");
        return reply(conn, 200, body, strlen(body), headers);
    }
    if (strcmp(url, "/big") == 0) {
        char *big = malloc(BIG_BODY);
        struct MHD_Response *r;
        enum MHD_Result ret;

        if (big == NULL)
            return MHD_NO;
        memset(big, 'x', BIG_BODY);
        r = MHD_create_response_from_buffer(BIG_BODY, big, MHD_RESPMEM_MUST_FREE);
        if (r == NULL) {
            free(big);
            return MHD_NO;
        }
        ret = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strcmp(url, "/slow") == 0) {
        for (int waited = 0; waited < SLOW_MS && !atomic_load(&srv.stop); waited += 10)
            sleep_ms(10);
        return reply(conn, 200, "\"late\"", 6, NULL);
    }
    if (strcmp(url, "/500") == 0)
        return reply(conn, 500, "oops", 4, NULL);
    return reply(conn, 404, "none", 4, NULL);
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    if (*con_cls != &srv)
        free(*con_cls);
    *con_cls = NULL;
}

static void connection_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)conn;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&srv.connections, 1);
}

static int server_start(void **state)
{
    struct sockaddr_in sa;
    const union MHD_DaemonInfo *info;

    (void)state;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    atomic_store(&srv.stop, 0);
    srv.d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL,
        NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED, completed_cb,
        NULL, MHD_OPTION_NOTIFY_CONNECTION, connection_cb, NULL, MHD_OPTION_END);
    if (srv.d == NULL)
        return -1;
    info = MHD_get_daemon_info(srv.d, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0)
        return -1;
    srv.port = info->port;
    return http_global_init() == 0 ? 0 : -1;
}

static int server_stop(void **state)
{
    (void)state;
    atomic_store(&srv.stop, 1);
    MHD_stop_daemon(srv.d);
    http_global_cleanup();
    return 0;
}

static void url_for(char *buf, size_t n, const char *path)
{
    snprintf(buf, n, "http://127.0.0.1:%u%s", (unsigned)srv.port, path);
}

/* ------------------------------------------------------------------ probes */

struct probe {
    struct http_client *client;
    int index;
    int fired;
    long status;
    int transport_error;
    char error[256];
    struct base_buf body; /* taken from the response */
    char custom[64];
    char quota[32];
    char accept_encoding[64];
    char token[64];
    char user_agent[64];
    uint64_t sent, done;
    int *remaining;    /* when it reaches 0, the probe closes the client */
    int close_on_done; /* this probe closes the client whatever remains */
    int try_send;      /* try http_send inside the callback (the client is closing) */
    int send_rc_in_cb; /* its answer */
};

static void copy_header(char *dst, size_t n, const struct http_response *r, const char *name)
{
    const char *v = http_response_header(r, name);

    snprintf(dst, n, "%s", v ? v : "(absent)");
}

static void noop_cb(struct http_response *resp, void *data)
{
    (void)resp;
    (void)data;
    fail_msg("a callback of a refused call ran");
}

static void probe_cb(struct http_response *resp, void *data)
{
    struct probe *p = data;
    char url[128];
    const struct http_request req = {.url = url};

    p->fired++;
    p->status = resp->status;
    p->transport_error = resp->transport_error;
    snprintf(p->error, sizeof(p->error), "%s", resp->error);
    /* Take the body: the client must not free it. */
    p->body = resp->body;
    resp->body.data = NULL;
    copy_header(p->custom, sizeof(p->custom), resp, "X-CUSTOM");
    copy_header(p->quota, sizeof(p->quota), resp, "x-keap-product-quota-available");
    copy_header(p->accept_encoding, sizeof(p->accept_encoding), resp, "X-Seen-Accept-Encoding");
    copy_header(p->token, sizeof(p->token), resp, "x-seen-token");
    copy_header(p->user_agent, sizeof(p->user_agent), resp, "x-seen-user-agent");
    p->sent = resp->sent_mono_ms;
    p->done = resp->done_mono_ms;
    if (p->try_send) {
        url_for(url, sizeof(url), "/json?i=0");
        p->send_rc_in_cb = http_send(p->client, &req, noop_cb, NULL);
        if (p->send_rc_in_cb == 0)
            fail_msg("http_send was accepted while the client closes");
    }
    if (p->close_on_done || (p->remaining != NULL && --*p->remaining == 0))
        http_client_close(p->client);
}

static void probe_free(struct probe *p)
{
    base_buf_free(&p->body);
}

static void loop_finish(uv_loop_t *loop)
{
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ------------------------------------------------------------------ tests */

/* Many calls at once over few connections: each callback once, with its own answer. */
static void test_many_concurrent(void **state)
{
    enum { N = 50, MAXCONN = 4 };
    static struct probe probes[N];
    static const char *const extra[] = {"X-Test-Token: t0k3n", NULL};
    const struct http_options opt = {.max_body = 4096, .max_connections = MAXCONN};
    struct http_client *c = NULL;
    uv_loop_t loop;
    char url[128], want[64];
    int remaining = N, conns_before = atomic_load(&srv.connections), conns;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_client_new(&c, &loop, &opt), 0);
    memset(probes, 0, sizeof(probes));
    for (int i = 0; i < N; i++) {
        struct http_request req = {.url = url, .headers = extra};

        if (i % 10 == 7)
            url_for(url, sizeof(url), "/500");
        else {
            snprintf(want, sizeof(want), "/json?i=%d", i);
            url_for(url, sizeof(url), want);
        }
        probes[i].client = c;
        probes[i].index = i;
        probes[i].remaining = &remaining;
        assert_int_equal(http_send(c, &req, probe_cb, &probes[i]), 0);
    }
    assert_int_equal(http_client_pending(c), N);
    loop_finish(&loop);

    for (int i = 0; i < N; i++) {
        struct probe *p = &probes[i];

        assert_int_equal(p->fired, 1);
        assert_int_equal(p->transport_error, 0);
        assert_string_equal(p->error, "");
        assert_non_null(p->body.data);
        ASSERT_LE(p->sent, p->done);
        if (i % 10 == 7) {
            assert_int_equal(p->status, 500);
            assert_string_equal(p->body.data, "oops");
            continue;
        }
        snprintf(want, sizeof(want), "{\"i\":%d}", i);
        assert_int_equal(p->status, 200);
        assert_string_equal(p->body.data, want);
        assert_int_equal(p->body.len, strlen(want));
        assert_string_equal(p->quota, "29841");
        assert_string_equal(p->custom, "padded value");
        assert_string_equal(p->token, "t0k3n");
        assert_non_null(strstr(p->accept_encoding, "gzip"));
        assert_int_equal(strncmp(p->user_agent, "keapsync/", 9), 0);
    }
    /* Keep-alive: far fewer connections than calls. */
    conns = atomic_load(&srv.connections) - conns_before;
    print_message("connections: %d\n", conns);
    ASSERT_GE(conns, 1);
    ASSERT_LE(conns, MAXCONN);
    for (int i = 0; i < N; i++)
        probe_free(&probes[i]);
}

/* A body over max_body fails the call with a message naming the cap. */
static void test_body_cap(void **state)
{
    struct probe big = {0}, small = {0};
    const struct http_options opt = {.max_body = 65536};
    struct http_client *c = NULL;
    uv_loop_t loop;
    char url1[128], url2[128], want[64];
    int remaining = 2;
    struct http_request r1 = {.url = url1}, r2 = {.url = url2};

    (void)state;
    url_for(url1, sizeof(url1), "/big");
    url_for(url2, sizeof(url2), "/json?i=7");
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_client_new(&c, &loop, &opt), 0);
    big.client = small.client = c;
    big.remaining = small.remaining = &remaining;
    assert_int_equal(http_send(c, &r1, probe_cb, &big), 0);
    assert_int_equal(http_send(c, &r2, probe_cb, &small), 0);
    loop_finish(&loop);

    assert_int_equal(big.fired, 1);
    assert_int_equal(big.transport_error, CURLE_WRITE_ERROR);
    assert_int_equal(big.status, 0);
    snprintf(want, sizeof(want), "response body exceeds %zu bytes", opt.max_body);
    assert_string_equal(big.error, want);
    assert_true(big.body.data == NULL || big.body.len == 0);
    assert_int_equal(small.fired, 1);
    assert_int_equal(small.status, 200);
    assert_string_equal(small.body.data, "{\"i\":7}");
    probe_free(&big);
    probe_free(&small);
}

/* A call slower than timeout_ms fails with curl's timeout error. */
static void test_timeout(void **state)
{
    struct probe slow = {0};
    const struct http_options opt = {.timeout_ms = 200};
    struct http_client *c = NULL;
    uv_loop_t loop;
    char url[128];
    struct http_request req = {.url = url};

    (void)state;
    url_for(url, sizeof(url), "/slow");
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_client_new(&c, &loop, &opt), 0);
    slow.client = c;
    slow.close_on_done = 1;
    assert_int_equal(http_send(c, &req, probe_cb, &slow), 0);
    loop_finish(&loop);

    assert_int_equal(slow.fired, 1);
    assert_int_equal(slow.transport_error, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(slow.status, 0);
    assert_true(slow.error[0] != '\0');
    ASSERT_GE(slow.done, slow.sent);
    probe_free(&slow);
}

static void close_timer_cb(uv_timer_t *t)
{
    http_client_close(t->data);
    uv_close((uv_handle_t *)t, NULL);
}

/* http_client_close cancels calls in flight: each callback once, ABORTED_BY_CALLBACK. */
static void test_close_cancels(void **state)
{
    enum { N = 5 };
    struct probe probes[N];
    struct http_client *c = NULL;
    uv_loop_t loop;
    uv_timer_t t;
    char url[128];
    struct http_request req = {.url = url};

    (void)state;
    memset(probes, 0, sizeof(probes));
    url_for(url, sizeof(url), "/slow");
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_client_new(&c, &loop, NULL), 0);
    for (int i = 0; i < N; i++) {
        probes[i].client = c;
        probes[i].try_send = 1;
        assert_int_equal(http_send(c, &req, probe_cb, &probes[i]), 0);
    }
    assert_int_equal(uv_timer_init(&loop, &t), 0);
    t.data = c;
    assert_int_equal(uv_timer_start(&t, close_timer_cb, 100, 0), 0);
    loop_finish(&loop);

    for (int i = 0; i < N; i++) {
        assert_int_equal(probes[i].fired, 1);
        assert_int_equal(probes[i].transport_error, CURLE_ABORTED_BY_CALLBACK);
        assert_int_equal(probes[i].status, 0);
        assert_int_equal(probes[i].send_rc_in_cb, BASE_ECANCELED);
        probe_free(&probes[i]);
    }
}

/* Closing from a done callback cancels the rest and still closes cleanly. */
static void test_close_from_callback(void **state)
{
    enum { N = 4 };
    struct probe fast = {0}, slow[N];
    struct http_client *c = NULL;
    uv_loop_t loop;
    char url1[128], url2[128];
    struct http_request r1 = {.url = url1}, r2 = {.url = url2};

    (void)state;
    memset(slow, 0, sizeof(slow));
    url_for(url1, sizeof(url1), "/json?i=1");
    url_for(url2, sizeof(url2), "/slow");
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_client_new(&c, &loop, NULL), 0);
    for (int i = 0; i < N; i++) {
        slow[i].client = c;
        slow[i].try_send = 1;
        assert_int_equal(http_send(c, &r2, probe_cb, &slow[i]), 0);
    }
    fast.client = c;
    fast.close_on_done = 1;
    assert_int_equal(http_send(c, &r1, probe_cb, &fast), 0);
    loop_finish(&loop);

    assert_int_equal(fast.fired, 1);
    assert_int_equal(fast.status, 200);
    for (int i = 0; i < N; i++) {
        assert_int_equal(slow[i].fired, 1);
        assert_int_equal(slow[i].transport_error, CURLE_ABORTED_BY_CALLBACK);
        assert_int_equal(slow[i].send_rc_in_cb, BASE_ECANCELED);
        probe_free(&slow[i]);
    }
    probe_free(&fast);
}

/* A chain: a POST whose callback sends the next call; both bodies as expected. */
struct chain {
    struct http_client *c;
    int step;
    char got[2][128];
    long status[2];
    char content_type[64]; /* of the POST's final response (after its 100 Continue) */
};

static void chain_cb(struct http_response *resp, void *data)
{
    struct chain *ch = data;
    char url[128];
    const struct http_request next = {.url = url};

    snprintf(ch->got[ch->step], sizeof(ch->got[0]), "%s", resp->body.data ? resp->body.data : "");
    ch->status[ch->step] = resp->status;
    if (ch->step == 0)
        copy_header(ch->content_type, sizeof(ch->content_type), resp, "Content-Type");
    ch->step++;
    if (ch->step == 1) {
        url_for(url, sizeof(url), "/json?i=42");
        if (http_send(ch->c, &next, chain_cb, ch) != 0)
            http_client_close(ch->c);
    } else {
        http_client_close(ch->c);
    }
}

static void test_post_and_chain(void **state)
{
    static const char payload[] = "grant_type=refresh_token&refresh_token=abc%3D";
    static const char *const hdr[] = {"Content-Type: application/x-www-form-urlencoded",
                                      "Expect: 100-continue", NULL};
    struct chain ch = {0};
    uv_loop_t loop;
    char url[128];
    struct http_request req = {
        .method = "POST", .url = url, .headers = hdr, .body = payload, .body_len = strlen(payload)};

    (void)state;
    url_for(url, sizeof(url), "/echo");
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_client_new(&ch.c, &loop, NULL), 0);
    assert_int_equal(http_send(ch.c, &req, chain_cb, &ch), 0);
    loop_finish(&loop);

    assert_int_equal(ch.step, 2);
    assert_int_equal(ch.status[0], 200);
    assert_string_equal(ch.got[0], payload);
    assert_string_equal(ch.content_type, "application/json");
    assert_int_equal(ch.status[1], 200);
    assert_string_equal(ch.got[1], "{\"i\":42}");
}

/* Refused calls never call back; the client stays usable. */
static void test_send_refused(void **state)
{
    struct http_client *c = NULL;
    uv_loop_t loop;
    struct http_request bad_method = {.method = "PUT", .url = "http://127.0.0.1:1/"};
    struct http_request no_url = {.url = NULL};
    struct http_request bad_body = {.method = "POST", .url = "http://127.0.0.1:1/", .body_len = 3};

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_client_new(&c, &loop, NULL), 0);
    assert_int_equal(http_send(c, &bad_method, noop_cb, NULL), BASE_EINVAL);
    assert_int_equal(http_send(c, &no_url, noop_cb, NULL), BASE_EINVAL);
    assert_int_equal(http_send(c, &bad_body, noop_cb, NULL), BASE_EINVAL);
    assert_int_equal(http_send(c, &no_url, NULL, NULL), BASE_EINVAL);
    assert_int_equal(http_client_pending(c), 0);
    http_client_close(c);
    http_client_close(NULL);
    loop_finish(&loop);
}

/* A refused connection is a transport error, reported once. */
static void test_connect_refused(void **state)
{
    struct probe p = {0};
    struct http_client *c = NULL;
    uv_loop_t loop;
    /* Port 1 on loopback: nothing listens there in a test box. */
    struct http_request req = {.url = "http://127.0.0.1:1/"};

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_client_new(&c, &loop, NULL), 0);
    p.client = c;
    p.close_on_done = 1;
    assert_int_equal(http_send(c, &req, probe_cb, &p), 0);
    loop_finish(&loop);
    assert_int_equal(p.fired, 1);
    assert_int_equal(p.transport_error, CURLE_COULDNT_CONNECT);
    assert_int_equal(p.status, 0);
    probe_free(&p);
}

/* The loopback check that KEAPSYNC_TLS_INSECURE relies on: loopback addresses and localhost
 * only, nothing that would need a resolver to say. */
static void test_loopback_hosts(void **state)
{
    static const char *const yes[] = {
        "127.0.0.1", "127.0.0.2",       "127.255.255.254",  "127.1.2.3",
        "localhost", "LocalHost",       "localhost.",       "::1",
        "[::1]",     "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "[::ffff:127.9.9.9]",
    };
    static const char *const no[] = {
        "",
        "128.0.0.1",
        "126.255.255.255",
        "10.0.0.1",
        "0.0.0.0",
        "::",
        "::2",
        "[::1",
        "::1]",
        "::ffff:128.0.0.1",
        "127.1",
        "0x7f.0.0.1",
        "2130706433",
        "127.0.0.1.nip.io",
        "localhost.example.com",
        "foo.localhost",
        "localhostx",
        "api.infusionsoft.com",
        "127.0.0.1 ",
        "[127.0.0.1]",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (!http_host_is_loopback(yes[i]))
            fail_msg("\"%s\" should be loopback", yes[i]);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (http_host_is_loopback(no[i]))
            fail_msg("\"%s\" should not be loopback", no[i]);
    }
    assert_false(http_host_is_loopback(NULL));
}

static void test_loopback_urls(void **state)
{
    char host[64];

    (void)state;
    assert_true(http_url_is_loopback("https://127.0.0.1:8443/crm/rest", host, sizeof(host)));
    assert_string_equal(host, "127.0.0.1");
    assert_true(http_url_is_loopback("http://localhost/crm/rest", host, sizeof(host)));
    assert_string_equal(host, "localhost");
    assert_true(http_url_is_loopback("https://[::1]:9/x", host, sizeof(host)));
    assert_string_equal(host, "[::1]");
    assert_false(http_url_is_loopback("https://api.infusionsoft.com/crm/rest", host, sizeof(host)));
    assert_string_equal(host, "api.infusionsoft.com");
    /* user info naming a loopback host does not make the host one */
    assert_false(http_url_is_loopback("https://127.0.0.1@evil.example/x", host, sizeof(host)));
    assert_string_equal(host, "evil.example");
    assert_false(http_url_is_loopback("https://evil.example/127.0.0.1", NULL, 0));
    assert_false(http_url_is_loopback("https://evil.example?h=localhost", NULL, 0));
    assert_false(http_url_is_loopback("not a url", host, sizeof(host)));
    assert_string_equal(host, "");
    assert_false(http_url_is_loopback(NULL, host, sizeof(host)));
}

/* Which transport errors are failed verifications (fatal, never retried). */
static void test_tls_verify_errors(void **state)
{
    (void)state;
    assert_true(http_error_is_tls_verify(CURLE_PEER_FAILED_VERIFICATION));
    assert_true(http_error_is_tls_verify(CURLE_SSL_CACERT_BADFILE));
    assert_false(http_error_is_tls_verify(CURLE_OK));
    assert_false(http_error_is_tls_verify(CURLE_COULDNT_CONNECT));
    assert_false(http_error_is_tls_verify(CURLE_SSL_CONNECT_ERROR)); /* may be transient */
    assert_false(http_error_is_tls_verify(CURLE_OPERATION_TIMEDOUT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_concurrent),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_close_cancels),
        cmocka_unit_test(test_close_from_callback),
        cmocka_unit_test(test_post_and_chain),
        cmocka_unit_test(test_send_refused),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_loopback_hosts),
        cmocka_unit_test(test_loopback_urls),
        cmocka_unit_test(test_tls_verify_errors),
    };

    return cmocka_run_group_tests(tests, server_start, server_stop);
}
