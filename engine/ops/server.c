/*
 * server.c: the daemon's metrics (ops.h): a gatherer thread with a database connection of its
 * own rebuilds the Prometheus text every interval (and when asked, after a run), writes the
 * textfile and keeps the text as the snapshot; libmicrohttpd, on a thread of its own, serves
 * the snapshot as GET /metrics and the daemon's health as GET /healthz.
 *
 * Why threads and not a timer on the daemon's loop: the daemon's loop only turns while it
 * sleeps between runs (a run turns a loop of its own, sched_run), and a run may last hours, so
 * a timer there would skip the minutes of every run. The gatherer blocks on Postgres, never
 * the daemon; the server only copies the snapshot under the mutex.
 *
 * Words used here:
 *   snapshot  the last text the gatherer built, and when (mono ms).
 *   db_ok     when (mono ms) the database last answered the gatherer's queries.
 *   alive     when (mono ms) the daemon's thread last said it turns (ops_server_alive).
 */
#include "ops.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OPS_SNAPSHOT_MAX (4 * 1024 * 1024)

struct ops_server {
    struct ops_server_config cfg; /* tenant, path and addr copied below */
    char *tenant;                 /* under mu (ops_server_set_tenant) */
    char *path;

    pthread_t gatherer;
    bool gatherer_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    bool quit, refresh;
    char *snapshot; /* NUL-terminated, or NULL before the first gathering */
    size_t snapshot_len;
    uint64_t db_ok_ms, alive_ms; /* 0: never */
    uint64_t started_ms;
    char db_error[256];

    struct MHD_Daemon *mhd;
    int port;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the gatherer ---------------------------------------------------------------------------- */

/* One gathering with *s (connected first when NULL; closed when it broke). */
static void gather_once(struct ops_server *srv, struct store **s, bool *warned_db,
                        bool *warned_file)
{
    struct ops_quota q = {NULL, srv->cfg.daily_budget, 0};
    struct base_buf text;
    struct base_err err;
    char *tenant = NULL;
    int rc;

    pthread_mutex_lock(&srv->mu);
    if (srv->tenant != NULL)
        tenant = strdup(srv->tenant); /* NULL when out of memory: no quota lines this time */
    pthread_mutex_unlock(&srv->mu);
    q.tenant = tenant;
    base_err_clear(&err);
    base_buf_init(&text, OPS_SNAPSHOT_MAX);
    q.now_ms = base_clock_wall_ms(base_clock_system());
    rc = *s != NULL ? 0 : srv->cfg.connect_cb(s, &err);
    if (rc == 0)
        rc = ops_metrics_text(*s, &q, &text, &err);
    free(tenant);
    if (rc == 0 && srv->path != NULL) {
        /* From the text just built (a second gathering would double the queries), and before
         * the text is published: once /healthz says ok, the file is there too. */
        struct base_err ferr;
        int frc;

        base_err_clear(&ferr);
        frc = ops_textfile_write(srv->path, text.data ? text.data : "", text.len, &ferr);
        if (frc < 0 && !*warned_file)
            base_log_warning("%s", ferr.msg);
        else if (frc == 0)
            base_log_debug("metrics written to \"%s\"", srv->path);
        *warned_file = frc < 0;
    }
    pthread_mutex_lock(&srv->mu);
    if (rc == 0) {
        char *copy = malloc(text.len + 1);

        if (copy != NULL) {
            memcpy(copy, text.data ? text.data : "", text.len);
            copy[text.len] = '\0';
            free(srv->snapshot);
            srv->snapshot = copy;
            srv->snapshot_len = text.len;
        }
        srv->db_ok_ms = mono_ms();
        srv->db_error[0] = '\0';
    } else {
        snprintf(srv->db_error, sizeof(srv->db_error), "%s", err.msg);
    }
    pthread_mutex_unlock(&srv->mu);
    if (rc < 0) {
        if (!*warned_db)
            base_log_warning("could not gather the metrics: %s", err.msg);
        *warned_db = true;
        if (*s != NULL && !store_connection_ok(*s)) {
            store_close(*s);
            *s = NULL;
        }
        base_buf_free(&text);
        return;
    }
    if (*warned_db)
        base_log_info("gathering the metrics again");
    *warned_db = false;
    base_buf_free(&text);
}

static void *gatherer_main(void *arg)
{
    struct ops_server *srv = arg;
    struct store *s = NULL;
    bool warned_db = false, warned_file = false;
    struct timespec ts;

    pthread_mutex_lock(&srv->mu);
    while (!srv->quit) {
        srv->refresh = false;
        pthread_mutex_unlock(&srv->mu);
        gather_once(srv, &s, &warned_db, &warned_file);
        pthread_mutex_lock(&srv->mu);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += srv->cfg.interval_ms / 1000;
        ts.tv_nsec += (long)(srv->cfg.interval_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!srv->quit && !srv->refresh &&
               pthread_cond_timedwait(&srv->cv, &srv->mu, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&srv->mu);
    store_close(s);
    return NULL;
}

/* ---- the HTTP side --------------------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, const char *type,
                             const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result rc;

    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* The verdict of /healthz into body; returns the status. Called under mu. */
static unsigned int health_locked(const struct ops_server *srv, char *body, size_t size)
{
    uint64_t now = mono_ms(), db_window = srv->cfg.health_db_ms,
             alive_window = srv->cfg.health_alive_ms;
    uint64_t db_ref = srv->db_ok_ms ? srv->db_ok_ms : srv->started_ms;
    uint64_t alive_ref = srv->alive_ms ? srv->alive_ms : srv->started_ms;

    if (now - alive_ref > alive_window) {
        snprintf(body, size, "unhealthy: the daemon's loop has not turned for %" PRIu64 " s\n",
                 (now - alive_ref) / 1000);
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    }
    if (srv->db_ok_ms == 0 || now - db_ref > db_window) {
        if (srv->db_ok_ms == 0)
            snprintf(body, size, "unhealthy: the database has not answered yet%s%s\n",
                     srv->db_error[0] ? ": " : "", srv->db_error);
        else
            snprintf(body, size, "unhealthy: the database has not answered for %" PRIu64 " s%s%s\n",
                     (now - db_ref) / 1000, srv->db_error[0] ? ": " : "", srv->db_error);
        /* one line: a libpq message may hold newlines */
        for (char *p = body; *p != '\0'; p++)
            if (*p == '\n' && p[1] != '\0')
                *p = ' ';
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    }
    snprintf(body, size, "ok: the database answered %" PRIu64 " s ago\n", (now - db_ref) / 1000);
    return MHD_HTTP_OK;
}

static enum MHD_Result handle_cb(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **state)
{
    struct ops_server *srv = cls;
    static const char text_type[] = "text/plain; charset=utf-8";
    enum MHD_Result rc;
    char body[512];

    (void)version;
    (void)upload;
    (void)upload_size;
    (void)state;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, text_type, "only GET\n", 9);
    if (strcmp(url, "/metrics") == 0) {
        pthread_mutex_lock(&srv->mu);
        if (srv->snapshot != NULL)
            rc = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", srv->snapshot,
                       srv->snapshot_len);
        else
            rc = reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, text_type,
                       "the metrics are not gathered yet\n", 33);
        pthread_mutex_unlock(&srv->mu);
        return rc;
    }
    if (strcmp(url, "/healthz") == 0) {
        unsigned int status;

        pthread_mutex_lock(&srv->mu);
        status = health_locked(srv, body, sizeof(body));
        pthread_mutex_unlock(&srv->mu);
        return reply(c, status, text_type, body, strlen(body));
    }
    return reply(c, MHD_HTTP_NOT_FOUND, text_type, "not found: try /metrics or /healthz\n", 36);
}

/* ---- the public side ------------------------------------------------------------------------- */

static char *dup_or_null(const char *s, bool *oom)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = strdup(s);
    if (d == NULL)
        *oom = true;
    return d;
}

static int server_listen(struct ops_server *srv, struct base_err *err)
{
    const char *addr = srv->cfg.addr ? srv->cfg.addr : "127.0.0.1";
    struct sockaddr_in6 sa6;
    struct sockaddr_in sa4;
    const struct sockaddr *sa;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    const union MHD_DaemonInfo *info;

    memset(&sa4, 0, sizeof(sa4));
    memset(&sa6, 0, sizeof(sa6));
    if (inet_pton(AF_INET, addr, &sa4.sin_addr) == 1) {
        sa4.sin_family = AF_INET;
        sa4.sin_port = htons((uint16_t)srv->cfg.port);
        sa = (const struct sockaddr *)&sa4;
    } else if (inet_pton(AF_INET6, addr, &sa6.sin6_addr) == 1) {
        sa6.sin6_family = AF_INET6;
        sa6.sin6_port = htons((uint16_t)srv->cfg.port);
        sa = (const struct sockaddr *)&sa6;
        flags |= MHD_USE_IPv6;
    } else {
        base_err_set(err, BASE_ECONFIG, "invalid KEAPSYNC_METRICS_ADDR \"%s\"", addr);
        base_err_hint(err, "an IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0 or ::");
        return BASE_ECONFIG;
    }
    srv->mhd = MHD_start_daemon(flags, (uint16_t)srv->cfg.port, NULL, NULL, handle_cb, srv,
                                MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_CONNECTION_LIMIT, 16u,
                                MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (srv->mhd == NULL) {
        base_err_set(err, BASE_ECONFIG, "could not listen on %s port %d for --metrics-port", addr,
                     srv->cfg.port);
        base_err_hint(err, "choose a port no other process uses, or 0 for any free one");
        return BASE_ECONFIG;
    }
    info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info != NULL ? (int)info->port : srv->cfg.port;
    base_log_info("serving /metrics and /healthz on %s port %d", addr, srv->port);
    return 0;
}

int ops_server_start(const struct ops_server_config *cfg, struct ops_server **out,
                     struct base_err *err)
{
    struct ops_server *srv = calloc(1, sizeof(*srv));
    pthread_condattr_t ca;
    bool oom = false;
    int rc;

    if (srv == NULL)
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    srv->cfg = *cfg;
    srv->tenant = dup_or_null(cfg->tenant, &oom);
    srv->path = dup_or_null(cfg->metrics_path, &oom);
    if (oom) {
        free(srv->tenant);
        free(srv->path);
        free(srv);
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    }
    srv->cfg.tenant = srv->tenant;
    srv->cfg.metrics_path = srv->path;
    srv->cfg.addr = NULL; /* used only by server_listen, before start returns */
    if (srv->cfg.interval_ms <= 0)
        srv->cfg.interval_ms = 60000;
    srv->started_ms = mono_ms();
    pthread_mutex_init(&srv->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (cfg->port >= 0) {
        srv->cfg.addr = cfg->addr;
        rc = server_listen(srv, err);
        srv->cfg.addr = NULL;
        if (rc < 0)
            goto fail;
    }
    if (pthread_create(&srv->gatherer, NULL, gatherer_main, srv) != 0) {
        rc = base_err_set(err, BASE_ENOMEM, "could not start the metrics thread");
        goto fail;
    }
    srv->gatherer_started = true;
    *out = srv;
    return 0;
fail:
    if (srv->mhd != NULL)
        MHD_stop_daemon(srv->mhd);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv->tenant);
    free(srv->path);
    free(srv);
    return rc;
}

int ops_server_port(const struct ops_server *srv)
{
    return srv != NULL && srv->mhd != NULL ? srv->port : -1;
}

void ops_server_set_tenant(struct ops_server *srv, const char *tenant)
{
    char *copy = tenant ? strdup(tenant) : NULL;

    if (srv == NULL || (tenant != NULL && copy == NULL)) {
        free(copy);
        return;
    }
    pthread_mutex_lock(&srv->mu);
    if (srv->tenant == NULL || copy == NULL || strcmp(srv->tenant, copy) != 0) {
        free(srv->tenant);
        srv->tenant = copy;
        copy = NULL;
    }
    pthread_mutex_unlock(&srv->mu);
    free(copy);
}

void ops_server_refresh(struct ops_server *srv)
{
    if (srv == NULL)
        return;
    pthread_mutex_lock(&srv->mu);
    srv->refresh = true;
    pthread_cond_signal(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
}

void ops_server_alive(struct ops_server *srv)
{
    if (srv == NULL)
        return;
    pthread_mutex_lock(&srv->mu);
    srv->alive_ms = mono_ms();
    pthread_mutex_unlock(&srv->mu);
}

void ops_server_stop(struct ops_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->mhd != NULL)
        MHD_stop_daemon(srv->mhd); /* no handler runs after this */
    if (srv->gatherer_started) {
        pthread_mutex_lock(&srv->mu);
        srv->quit = true;
        pthread_cond_signal(&srv->cv);
        pthread_mutex_unlock(&srv->mu);
        pthread_join(srv->gatherer, NULL);
    }
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv->snapshot);
    free(srv->tenant);
    free(srv->path);
    free(srv);
}
