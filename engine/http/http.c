/*
 * http.c: libcurl multi handles driven by a libuv loop (see http.h for the vocabulary).
 *
 * Words used here besides those of http.h:
 *   sock      our context for one socket curl asked us to watch: a uv_poll_t embedded in it,
 *             found again with container_of, freed in its close callback.
 *   dispatch  a libuv callback of ours (poll or timer) that drives curl and then drains
 *             curl_multi_info_read, finishing the calls curl reports done.
 *   shutdown  the last step of http_client_close: curl's multi handle is cleaned up and every
 *             uv handle closed; the client is freed by the last close callback.
 *
 * http_client_close may be called from a done callback, i.e. inside a dispatch. Then the
 * calls are canceled at once, but the multi handle is cleaned up only when the outermost
 * dispatch returns (depth counts nested dispatches), so curl is never torn down under itself.
 */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#ifndef KEAPSYNC_VERSION
#define KEAPSYNC_VERSION "0"
#endif

#define HTTP_DEFAULT_MAX_BODY        (32u * 1024u * 1024u)
#define HTTP_DEFAULT_CONNECT_TIMEOUT 10000L
#define HTTP_DEFAULT_TIMEOUT         120000L
#define HTTP_DEFAULT_LOW_SPEED_TIME  30L
#define HTTP_DEFAULT_MAX_CONNECTIONS 16
/* Caps on what one response's headers may hold. */
#define HTTP_MAX_HEADERS      200
#define HTTP_MAX_HEADER_BYTES (64u * 1024u)

/* http_tls_configure's settings, for every call. */
static char *tls_ca_file;
static bool tls_insecure;

struct http_sock {
    uv_poll_t poll; /* poll.data unused: container_of finds us */
    curl_socket_t fd;
    struct http_client *client;
    struct http_sock *prev, *next; /* the client's list of open socks */
};

struct http_call {
    struct http_call *prev, *next; /* the client's list of calls in flight */
    struct http_client *client;
    CURL *easy;
    struct curl_slist *req_headers;
    http_done_cb cb;
    void *data;
    struct http_response resp;
    size_t headers_cap;
    size_t header_bytes;
    int body_too_big;    /* the body hit max_body: the call fails */
    int headers_too_big; /* the headers hit their caps: the call fails */
    int out_of_memory;   /* a callback could not allocate: the call fails */
    char errbuf[CURL_ERROR_SIZE];
};

struct http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char *user_agent;
    size_t max_body;
    long connect_timeout_ms;
    long timeout_ms;
    long low_speed_time_s;
    struct http_call *calls; /* in flight */
    size_t pending;
    struct http_sock *socks; /* being polled */
    int depth;               /* nested dispatches running */
    int closing;             /* http_client_close was called */
    int shut;                /* shutdown done: multi gone, handles closing */
    int nhandles;            /* uv handles not yet closed (timer + socks) */
};

static void client_maybe_free(struct http_client *c)
{
    if (c->shut && c->nhandles == 0) {
        free(c->user_agent);
        free(c);
    }
}

static void sock_close_cb(uv_handle_t *h)
{
    struct http_sock *s = container_of((uv_poll_t *)h, struct http_sock, poll);
    struct http_client *c = s->client;

    free(s);
    c->nhandles--;
    client_maybe_free(c);
}

static void timer_close_cb(uv_handle_t *h)
{
    struct http_client *c = container_of((uv_timer_t *)h, struct http_client, timer);

    c->nhandles--;
    client_maybe_free(c);
}

static void sock_unlink(struct http_client *c, struct http_sock *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void call_unlink(struct http_client *c, struct http_call *call)
{
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    c->pending--;
}

static void headers_clear(struct http_response *resp)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        free(resp->headers[i].name); /* value lives in the same block */
    resp->nheaders = 0;
}

static void call_free(struct http_call *call)
{
    if (call == NULL)
        return;
    if (call->easy != NULL)
        curl_easy_cleanup(call->easy);
    curl_slist_free_all(call->req_headers);
    headers_clear(&call->resp);
    free(call->resp.headers);
    base_buf_free(&call->resp.body);
    free(call);
}

/* TCP_INFO's rttvar and least round trip of the call's connection (still open: curl keeps it
 * in its pool), in us, into resp; -1 each when unknown. */
/* glibc's struct tcp_info stops at tcpi_total_retrans; Linux 4.6 and later go on with these
 * (include/uapi/linux/tcp.h, whose header clashes with <netinet/tcp.h>). */
struct http_tcp_info {
    struct tcp_info base;
    uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
    uint32_t segs_out, segs_in, notsent_bytes, min_rtt;
};

static void call_tcp_info(CURL *easy, struct http_response *resp)
{
    curl_socket_t fd = CURL_SOCKET_BAD;
    struct http_tcp_info ti;
    socklen_t len = sizeof(ti);

    resp->tcp_rttvar_us = -1;
    resp->tcp_min_rtt_us = -1;
    if (curl_easy_getinfo(easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD)
        return;
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || ti.base.tcpi_rtt == 0)
        return;
    if (len >= offsetof(struct tcp_info, tcpi_rttvar) + sizeof(ti.base.tcpi_rttvar))
        resp->tcp_rttvar_us = (int64_t)ti.base.tcpi_rttvar;
    if (len >= offsetof(struct http_tcp_info, min_rtt) + sizeof(ti.min_rtt) &&
        ti.min_rtt != UINT32_MAX)
        resp->tcp_min_rtt_us = (int64_t)ti.min_rtt;
}

/* Just before curl writes the request: the instant the call reached the network. */
static int prereq_cb(void *data, char *remote_ip, char *local_ip, int remote_port, int local_port)
{
    struct http_call *call = data;

    (void)remote_ip;
    (void)local_ip;
    (void)remote_port;
    (void)local_port;
    call->resp.request_mono_us = uv_hrtime() / 1000;
    return CURL_PREREQFUNC_OK;
}

/*
 * Fills in the response of a call curl is done with (or that was canceled), removes it from
 * the multi handle and the client, runs its callback once and frees it.
 */
static void call_finish(struct http_call *call, CURLcode result)
{
    struct http_client *c = call->client;
    struct http_response *resp = &call->resp;
    long status = 0;
    double t;

    /* before the handle leaves the multi: its connection is still attached then */
    if (result == CURLE_OK) {
        call_tcp_info(call->easy, resp);
    } else {
        resp->tcp_rttvar_us = -1;
        resp->tcp_min_rtt_us = -1;
    }
    if (c->multi != NULL)
        curl_multi_remove_handle(c->multi, call->easy);
    call_unlink(c, call);

    resp->transport_error = (int)result;
    if (curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
        resp->status = status;
    if (curl_easy_getinfo(call->easy, CURLINFO_CONNECT_TIME, &t) == CURLE_OK)
        resp->connect_s = t;
    if (curl_easy_getinfo(call->easy, CURLINFO_TOTAL_TIME, &t) == CURLE_OK)
        resp->total_s = t;
    resp->done_mono_ms = uv_now(c->loop);

    if (result != CURLE_OK) {
        resp->body_too_big = call->body_too_big;
        if (call->body_too_big)
            base_snprintf(resp->error, sizeof(resp->error), "response body exceeds %zu bytes",
                          resp->body.max);
        else if (call->headers_too_big)
            base_snprintf(resp->error, sizeof(resp->error),
                          "response headers exceed %d lines or %u bytes", HTTP_MAX_HEADERS,
                          HTTP_MAX_HEADER_BYTES);
        else if (call->out_of_memory)
            base_snprintf(resp->error, sizeof(resp->error), "out of memory reading the response");
        else if (http_error_is_tls_verify((int)result))
            base_snprintf(resp->error, sizeof(resp->error), "TLS verification failed: %s",
                          call->errbuf[0] != '\0' ? call->errbuf : curl_easy_strerror(result));
        else if (call->errbuf[0] != '\0')
            base_snprintf(resp->error, sizeof(resp->error), "%s", call->errbuf);
        else
            base_snprintf(resp->error, sizeof(resp->error), "%s", curl_easy_strerror(result));
        /* A failed call has no status and no (partial) body. */
        resp->status = 0;
        base_buf_reset(&resp->body);
    }
    /* An empty body still reads as "" when memory allows. */
    if (resp->body.data == NULL && base_buf_reserve(&resp->body, 0) == BASE_OK)
        resp->body.data[0] = '\0';

    call->cb(resp, call->data);
    call_free(call);
}

/* Finishes every call curl reports done. Stops when a callback closed the client. */
static void drain_done(struct http_client *c)
{
    CURLMsg *msg;
    int left;

    while (!c->closing && (msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        void *priv = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
            priv == NULL)
            continue;
        call_finish(priv, msg->data.result);
    }
}

static void client_shutdown(struct http_client *c);

static void dispatch_enter(struct http_client *c)
{
    c->depth++;
}

static void dispatch_leave(struct http_client *c)
{
    c->depth--;
    if (c->depth == 0 && c->closing && !c->shut)
        client_shutdown(c);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct http_sock *s = container_of(h, struct http_sock, poll);
    struct http_client *c = s->client;
    int flags = 0, running;

    if (c->shut || c->closing)
        return;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    dispatch_enter(c);
    /* s stays valid until its close callback, even if curl drops the socket here. */
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    drain_done(c);
    dispatch_leave(c);
}

static void timer_cb(uv_timer_t *h)
{
    struct http_client *c = container_of(h, struct http_client, timer);
    int running;

    if (c->shut || c->closing)
        return;
    dispatch_enter(c);
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain_done(c);
    dispatch_leave(c);
}

static void sock_close(struct http_client *c, struct http_sock *s)
{
    sock_unlink(c, s);
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_close_cb);
}

/*
 * CURLMOPT_SOCKETFUNCTION: start, change or stop watching one socket. When we cannot watch a
 * socket (no memory), we say so and return 0 rather than -1: -1 would kill the whole multi
 * handle, while an unwatched socket only stalls its transfer until curl's own timeouts
 * (always set) finish it with an error, and the next call for that socket tries again.
 */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct http_client *c = userp;
    struct http_sock *s = socketp;
    int events = 0;

    if (c->shut) /* curl_multi_cleanup closing its connections: nothing left to watch */
        return 0;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(c, s);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            base_log_warning("could not watch a socket: out of memory");
            return 0;
        }
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            base_log_warning("could not watch a socket: poll handle refused");
            free(s);
            return 0;
        }
        s->fd = fd;
        s->client = c;
        s->next = c->socks;
        if (c->socks != NULL)
            c->socks->prev = s;
        c->socks = s;
        c->nhandles++;
        if (curl_multi_assign(c->multi, fd, s) != CURLM_OK) {
            sock_close(c, s);
            return 0;
        }
    }
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    if (uv_poll_start(&s->poll, events, poll_cb) != 0)
        base_log_warning("could not watch a socket: poll start refused");
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants socket_action(CURL_SOCKET_TIMEOUT) in timeout_ms. */
static int timer_fn_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *c = userp;

    if (c->shut)
        return 0;
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
        return 0;
    }
    /* Even 0 goes through the loop: curl must not be re-entered from its own callback. */
    if (uv_timer_start(&c->timer, timer_cb, (uint64_t)timeout_ms, 0) != 0)
        return -1;
    return 0;
}

/* CURLOPT_WRITEFUNCTION: body bytes into the capped buffer. */
static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct http_call *call = userdata;
    size_t n = size * nmemb;
    int rc;

    rc = base_buf_append(&call->resp.body, ptr, n);
    if (rc == BASE_ETOOBIG) {
        call->body_too_big = 1;
        return 0;
    }
    if (rc < 0) {
        call->out_of_memory = 1;
        return 0;
    }
    return n;
}

static int is_http_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Stores one "Name: value" header line of the current response. */
static int header_store(struct http_call *call, const char *line, size_t n)
{
    struct http_response *resp = &call->resp;
    const char *colon = memchr(line, ':', n);
    size_t nlen, vstart, vend;
    char *block;

    if (colon == NULL || colon == line)
        return 0; /* not a field line: ignored */
    nlen = (size_t)(colon - line);
    vstart = nlen + 1;
    while (nlen > 0 && is_http_ws(line[nlen - 1]))
        nlen--;
    if (nlen == 0)
        return 0;
    vend = n;
    while (vstart < vend && is_http_ws(line[vstart]))
        vstart++;
    while (vend > vstart && is_http_ws(line[vend - 1]))
        vend--;
    if (resp->nheaders >= HTTP_MAX_HEADERS ||
        call->header_bytes + nlen + (vend - vstart) + 2 > HTTP_MAX_HEADER_BYTES) {
        call->headers_too_big = 1;
        return -1;
    }
    if (resp->nheaders == call->headers_cap) {
        size_t ncap = call->headers_cap ? call->headers_cap * 2 : 16;
        struct http_header *h = realloc(resp->headers, ncap * sizeof(*h));

        if (h == NULL) {
            call->out_of_memory = 1;
            return -1;
        }
        resp->headers = h;
        call->headers_cap = ncap;
    }
    block = malloc(nlen + 1 + (vend - vstart) + 1);
    if (block == NULL) {
        call->out_of_memory = 1;
        return -1;
    }
    for (size_t i = 0; i < nlen; i++)
        block[i] = (char)tolower((unsigned char)line[i]);
    block[nlen] = '\0';
    memcpy(block + nlen + 1, line + vstart, vend - vstart);
    block[nlen + 1 + (vend - vstart)] = '\0';
    resp->headers[resp->nheaders].name = block;
    resp->headers[resp->nheaders].value = block + nlen + 1;
    resp->nheaders++;
    call->header_bytes += nlen + (vend - vstart) + 2;
    return 0;
}

/*
 * CURLOPT_HEADERFUNCTION: collects the final response's headers. A status line starts a new
 * response (after a 100 Continue, say), so it drops what was collected before.
 */
static size_t header_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
    struct http_call *call = userdata;
    size_t n = size * nitems;

    if (n >= 5 && memcmp(buffer, "HTTP/", 5) == 0) {
        headers_clear(&call->resp);
        call->header_bytes = 0;
        return n;
    }
    if (n > 0 && (buffer[0] == ' ' || buffer[0] == '\t'))
        return n; /* obsolete line folding: ignored */
    if (header_store(call, buffer, n) < 0)
        return 0;
    return n;
}

int http_tls_configure(const struct http_tls *tls)
{
    char *ca = NULL;

    if (tls != NULL && tls->ca_file != NULL && (ca = strdup(tls->ca_file)) == NULL)
        return BASE_ENOMEM;
    free(tls_ca_file);
    tls_ca_file = ca;
    tls_insecure = tls != NULL && tls->insecure;
    return BASE_OK;
}

bool http_host_is_loopback(const char *host)
{
    char buf[INET6_ADDRSTRLEN + 8];
    size_t n;
    struct in_addr a4;
    struct in6_addr a6;
    bool bracketed = false;

    if (host == NULL)
        return false;
    n = strlen(host);
    if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
        return true;
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') { /* brackets: IPv6 only */
        host++;
        n -= 2;
        bracketed = true;
    }
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, host, n);
    buf[n] = '\0';
    if (!bracketed && inet_pton(AF_INET, buf, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, buf, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

bool http_url_is_loopback(const char *url, char *host, size_t n)
{
    CURLU *h = url != NULL ? curl_url() : NULL;
    char *part = NULL;
    bool yes = false;

    if (host != NULL && n > 0)
        host[0] = '\0';
    if (h == NULL)
        return false;
    if (curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        curl_url_get(h, CURLUPART_HOST, &part, 0) == CURLUE_OK) {
        yes = http_host_is_loopback(part);
        if (host != NULL && n > 0)
            base_snprintf(host, n, "%s", part);
    }
    curl_free(part);
    curl_url_cleanup(h);
    return yes;
}

bool http_error_is_tls_verify(int transport_error)
{
    switch (transport_error) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return true;
    default:
        return false;
    }
}

int http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? BASE_OK : BASE_EIO;
}

void http_global_cleanup(void)
{
    http_tls_configure(NULL);
    curl_global_cleanup();
}

int http_client_new(struct http_client **out, uv_loop_t *loop, const struct http_options *opt)
{
    struct http_client *c;
    int result = BASE_ENOMEM;
    long maxconn;

    if (out == NULL || loop == NULL)
        return BASE_EINVAL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return BASE_ENOMEM;
    c->loop = loop;
    c->max_body = opt && opt->max_body ? opt->max_body : HTTP_DEFAULT_MAX_BODY;
    c->connect_timeout_ms =
        opt && opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : HTTP_DEFAULT_CONNECT_TIMEOUT;
    c->timeout_ms = opt && opt->timeout_ms > 0 ? opt->timeout_ms : HTTP_DEFAULT_TIMEOUT;
    c->low_speed_time_s =
        opt && opt->low_speed_time_s > 0 ? opt->low_speed_time_s : HTTP_DEFAULT_LOW_SPEED_TIME;
    maxconn = opt && opt->max_connections > 0 ? opt->max_connections : HTTP_DEFAULT_MAX_CONNECTIONS;
    c->user_agent = strdup(opt && opt->user_agent ? opt->user_agent : "keapsync/" KEAPSYNC_VERSION);
    if (c->user_agent == NULL)
        goto fail;
    c->multi = curl_multi_init();
    if (c->multi == NULL)
        goto fail;
    result = BASE_EIO;
    if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_fn_cb) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, maxconn) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, maxconn) != CURLM_OK)
        goto fail;
    /* Nothing below can fail: once the timer exists, only a close callback may free c. */
    if (uv_timer_init(loop, &c->timer) != 0)
        goto fail;
    c->nhandles = 1;
    *out = c;
    return BASE_OK;

fail:
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    free(c->user_agent);
    free(c);
    return result;
}

static int call_setup(struct http_client *c, struct http_call *call, const struct http_request *req)
{
    CURL *e = call->easy;
    int is_post = 0;
    CURLcode rc = CURLE_OK;

    if (req->method != NULL && strcmp(req->method, "GET") != 0) {
        if (strcmp(req->method, "POST") != 0)
            return BASE_EINVAL;
        is_post = 1;
    }
    for (const char *const *h = req->headers; h != NULL && *h != NULL; h++) {
        struct curl_slist *l = curl_slist_append(call->req_headers, *h);

        if (l == NULL)
            return BASE_ENOMEM;
        call->req_headers = l;
    }

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, req->url); /* curl copies it */
    SET(CURLOPT_PRIVATE, call);
    SET(CURLOPT_ERRORBUFFER, call->errbuf);
    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, call);
    SET(CURLOPT_HEADERFUNCTION, header_cb);
    SET(CURLOPT_HEADERDATA, call);
    SET(CURLOPT_PREREQFUNCTION, prereq_cb);
    SET(CURLOPT_PREREQDATA, call);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, c->timeout_ms);
    SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
    SET(CURLOPT_LOW_SPEED_TIME, c->low_speed_time_s);
    SET(CURLOPT_USERAGENT, c->user_agent);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    /* Verified unless insecure was asked for and the host is loopback (http_tls_configure). */
    {
        bool verify = !(tls_insecure && http_url_is_loopback(req->url, NULL, 0));

        SET(CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
        SET(CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
    }
    if (tls_ca_file != NULL)
        SET(CURLOPT_CAINFO, tls_ca_file);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (call->req_headers != NULL)
        SET(CURLOPT_HTTPHEADER, call->req_headers);
    if (is_post) {
        /* Size first, so COPYPOSTFIELDS copies exactly body_len bytes. */
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_COPYPOSTFIELDS, req->body != NULL ? req->body : "");
    }
#undef SET
    if (rc == CURLE_OUT_OF_MEMORY)
        return BASE_ENOMEM;
    return rc == CURLE_OK ? BASE_OK : BASE_EINVAL;
}

int http_send(struct http_client *c, const struct http_request *req, http_done_cb cb, void *data)
{
    struct http_call *call;
    int result;

    if (c == NULL || req == NULL || req->url == NULL || cb == NULL)
        return BASE_EINVAL;
    if (c->closing)
        return BASE_ECANCELED;
    if (req->body_len > 0 && req->body == NULL)
        return BASE_EINVAL;
    call = calloc(1, sizeof(*call));
    if (call == NULL)
        return BASE_ENOMEM;
    call->client = c;
    call->cb = cb;
    call->data = data;
    base_buf_init(&call->resp.body, c->max_body);
    result = BASE_ENOMEM;
    call->easy = curl_easy_init();
    if (call->easy == NULL)
        goto fail;
    result = call_setup(c, call, req);
    if (result < 0)
        goto fail;
    call->resp.sent_mono_ms = uv_now(c->loop);
    if (curl_multi_add_handle(c->multi, call->easy) != CURLM_OK) {
        result = BASE_EIO;
        goto fail;
    }
    call->next = c->calls;
    if (c->calls != NULL)
        c->calls->prev = call;
    c->calls = call;
    c->pending++;
    return BASE_OK;

fail:
    call_free(call);
    return result;
}

size_t http_client_pending(const struct http_client *c)
{
    return c != NULL ? c->pending : 0;
}

/* Cleans up the multi handle and closes every uv handle; the last close callback frees c. */
static void client_shutdown(struct http_client *c)
{
    c->shut = 1;
    while (c->socks != NULL) {
        struct http_sock *s = c->socks;

        curl_multi_assign(c->multi, s->fd, NULL);
        sock_close(c, s);
    }
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, timer_close_cb);
}

void http_client_close(struct http_client *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = 1;
    /* Callbacks run here may send (refused) or close again (ignored); take calls one by one. */
    while (c->calls != NULL)
        call_finish(c->calls, CURLE_ABORTED_BY_CALLBACK);
    if (c->depth == 0)
        client_shutdown(c);
}

const char *http_response_header(const struct http_response *resp, const char *name)
{
    if (resp == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}
