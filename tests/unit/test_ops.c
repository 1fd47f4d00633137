/*
 * test_ops.c: the daemon's metrics server (ops.h, ops_server_*) against a real Postgres (the
 * store fixture's database, migrated): /metrics serves the gathered text, /healthz turns 503
 * when the daemon stops checking in or the database stops answering and 200 when they are
 * back, the textfile is replaced each interval, and bad addresses and taken ports are
 * BASE_ECONFIG with nothing left running. Requests go through libcurl.
 */
#include "store_fixture.h"

#include "ops.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile bool connect_fails;

static int connect_cb(struct store **out, struct base_err *err)
{
    if (connect_fails)
        return base_err_set(err, BASE_EDB, "could not connect to the database: test says no");
    return store_connect(out, test_conninfo, err);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

struct reply {
    long status;
    char type[128];
    char body[65536];
    size_t len;
};

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    size_t take = size * n;

    if (take > sizeof(r->body) - 1 - r->len)
        take = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = '\0';
    return size * n;
}

/* GET (or method) http://127.0.0.1:port/path into *r; returns the curl code. */
static int fetch(int port, const char *path, const char *method, struct reply *r)
{
    CURL *c = curl_easy_init();
    char url[256];
    char *type = NULL;
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    assert_non_null(c);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    if (method != NULL)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
        snprintf(r->type, sizeof(r->type), "%s", type ? type : "");
    }
    curl_easy_cleanup(c);
    return (int)rc;
}

/* Polls /healthz until it answers status, for at most ms; returns the last status. */
static long health_until(int port, long status, long ms, struct reply *r)
{
    for (long waited = 0;; waited += 20) {
        if (fetch(port, "/healthz", NULL, r) == 0 && r->status == status)
            return r->status;
        if (waited >= ms)
            return r->status;
        sleep_ms(20);
    }
}

static void test_server(void **state)
{
    struct ops_server_config cfg = {0};
    struct ops_server *srv = NULL, *other = NULL;
    struct base_err err;
    struct reply r;
    struct store *s = NULL;
    char path[256];
    struct stat st1, st2;
    int applied = 0, port;

    (void)state;
    assert_int_equal(store_connect(&s, test_conninfo, &err), 0);
    assert_int_equal(store_migrate(s, &applied, &err), 0);
    store_close(s);
    snprintf(path, sizeof(path), "/tmp/keapsync-test-ops-%ld.prom", (long)getpid());
    unlink(path);

    cfg.connect_cb = connect_cb;
    cfg.tenant = "t\"1";
    cfg.daily_budget = 1000;
    cfg.metrics_path = path;
    cfg.port = 0;
    cfg.interval_ms = 100;
    cfg.health_db_ms = 600;
    cfg.health_alive_ms = 1500;
    assert_int_equal(ops_server_start(&cfg, &srv, &err), 0);
    port = ops_server_port(srv);
    assert_true(port > 0);
    ops_server_alive(srv);

    /* healthy once gathered; /metrics the text, with the tenant's label escaped */
    assert_int_equal(health_until(port, 200, 3000, &r), 200);
    assert_non_null(strstr(r.body, "ok: the database answered"));
    assert_int_equal(fetch(port, "/metrics", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.type, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(r.body, "\nkeapsync_requests_total 0\n"));
    assert_non_null(strstr(r.body, "keapsync_quota_left{tenant=\"t\\\"1\"} 1000\n"));
    assert_int_equal(fetch(port, "/nope", NULL, &r), 0);
    assert_int_equal(r.status, 404);
    assert_int_equal(fetch(port, "/metrics", "POST", &r), 0);
    assert_int_equal(r.status, 405);

    /* the textfile: there, and replaced (a new inode) an interval later */
    assert_int_equal(stat(path, &st1), 0);
    for (int i = 0; i < 100; i++) {
        ops_server_alive(srv);
        sleep_ms(20);
        if (stat(path, &st2) == 0 && st2.st_ino != st1.st_ino)
            break;
    }
    assert_int_not_equal(st2.st_ino, st1.st_ino);

    /* the tenant follows ops_server_set_tenant */
    ops_server_set_tenant(srv, "acme");
    ops_server_refresh(srv);
    for (int i = 0; i < 100; i++) {
        ops_server_alive(srv);
        sleep_ms(20);
        if (fetch(port, "/metrics", NULL, &r) == 0 &&
            strstr(r.body, "keapsync_quota_used{tenant=\"acme\"} 0\n") != NULL)
            break;
    }
    assert_non_null(strstr(r.body, "keapsync_quota_used{tenant=\"acme\"} 0\n"));

    /* the daemon stops checking in: 503, saying so; back when it does */
    assert_int_equal(health_until(port, 503, 6000, &r), 503);
    assert_non_null(strstr(r.body, "unhealthy: the daemon's loop has not turned for"));
    assert_true(r.len > 0);
    assert_ptr_equal(strchr(r.body, '\n'), r.body + r.len - 1); /* one line */
    ops_server_alive(srv);
    assert_int_equal(fetch(port, "/healthz", NULL, &r), 0);
    assert_int_equal(r.status, 200);

    /* the database goes away (its session killed, no new one): 503 with its error */
    connect_fails = true;
    q_run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
          "WHERE datname = current_database() AND pid <> pg_backend_pid()");
    for (int i = 0; i < 150; i++) {
        ops_server_alive(srv);
        if (fetch(port, "/healthz", NULL, &r) == 0 && r.status == 503)
            break;
        sleep_ms(20);
    }
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "unhealthy: the database has not answered for"));
    assert_non_null(strstr(r.body, "test says no"));
    /* /metrics keeps the last text */
    assert_int_equal(fetch(port, "/metrics", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    connect_fails = false;
    for (int i = 0; i < 150; i++) {
        ops_server_alive(srv);
        if (fetch(port, "/healthz", NULL, &r) == 0 && r.status == 200)
            break;
        sleep_ms(20);
    }
    assert_int_equal(r.status, 200);

    /* the same port again: taken */
    cfg.port = port;
    base_err_clear(&err);
    assert_int_equal(ops_server_start(&cfg, &other, &err), BASE_ECONFIG);
    assert_non_null(strstr(err.msg, "could not listen on 127.0.0.1 port"));
    assert_null(other);
    /* an address that is not one */
    cfg.port = 0;
    cfg.addr = "localhost";
    base_err_clear(&err);
    assert_int_equal(ops_server_start(&cfg, &other, &err), BASE_ECONFIG);
    assert_string_equal(err.msg, "invalid KEAPSYNC_METRICS_ADDR \"localhost\"");
    /* IPv6 loopback is one */
    cfg.addr = "::1";
    cfg.metrics_path = NULL;
    assert_int_equal(ops_server_start(&cfg, &other, &err), 0);
    assert_true(ops_server_port(other) > 0);
    ops_server_stop(other);

    ops_server_stop(srv);
    /* nothing listens any more */
    assert_int_not_equal(fetch(port, "/healthz", NULL, &r), 0);
    ops_server_stop(NULL);
    unlink(path);
}

/* Without a listener (port -1) the gatherer still writes the file. */
static void test_file_only(void **state)
{
    struct ops_server_config cfg = {0};
    struct ops_server *srv = NULL;
    struct base_err err;
    char path[256];
    struct stat st;
    bool there = false;

    (void)state;
    snprintf(path, sizeof(path), "/tmp/keapsync-test-ops-file-%ld.prom", (long)getpid());
    unlink(path);
    cfg.connect_cb = connect_cb;
    cfg.metrics_path = path;
    cfg.port = -1;
    cfg.interval_ms = 50;
    assert_int_equal(ops_server_start(&cfg, &srv, &err), 0);
    assert_int_equal(ops_server_port(srv), -1);
    for (int i = 0; i < 200 && !there; i++) {
        sleep_ms(10);
        there = stat(path, &st) == 0 && st.st_size > 0;
    }
    assert_true(there);
    ops_server_stop(srv);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server),
        cmocka_unit_test(test_file_only),
    };

    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
