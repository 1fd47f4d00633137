/*
 * reactive: the baseline of bench_pacing.sh. Pages /v1/contacts the way common ELT tools do
 * (Singer taps, Airbyte connectors): as many requests in flight as allowed, no pacing at all,
 * and on a 429 an exponential back-off with jitter, honouring Retry-After when present.
 *
 *   KEAP_API_KEY=... KEAP_BASE_URL=http://127.0.0.1:PORT/crm/rest \
 *       build/bench_reactive [--inflight N] [--page-size P] [--seconds S] [--seed X]
 *                            [--requests N]
 *
 * Words used here:
 *   worker    one of the N request slots (--inflight, default 20): it sends a page, waits for
 *             the answer and sends the next one, or the same page again after a back-off.
 *   useful    a 200 whose body parsed as a contacts page: what the sync actually needed.
 *   back-off  after a 429, a transport error or a 5xx: the server's Retry-After when it sent
 *             one greater than 0; otherwise uniform in [0, min(cap, base * 2^attempt)) (the
 *             "full jitter" that Python's backoff library, used by Singer taps, applies by
 *             default), base 1 s, cap 60 s. A success resets attempt. A worker never gives up:
 *             a real tap gives up after 5 to 8 tries and fails the whole sync, which could only
 *             lower the baseline's figure.
 *   job       with --requests N: N pages to fetch, like a sync of N pages; the run ends when
 *             all N are useful. Without it the pages never run out.
 * Pages are handed out in offset order (limit/offset, order=id); when the tenant runs out (a
 * short page) the offsets wrap to 0 so the load stays the same for the whole run.
 * The program runs until the job is done, --seconds have passed or SIGTERM/SIGINT arrives,
 * cancels what is in flight and prints one line on stdout:
 *   reactive: useful=N rate_limited=M errors=E canceled=C records=R seconds=S
 * Exit 0, or 1 when the server refused the key or a request could not be built.
 */
#include "base.h"
#include "http.h"
#include "keap.h"

#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define REACTIVE_BACKOFF_BASE_MS 1000
#define REACTIVE_BACKOFF_CAP_MS  60000
#define REACTIVE_MAX_LEVEL       16
#define REACTIVE_MAX_BODY        (16u << 20)
#define REACTIVE_MAX_URL         4096
#define REACTIVE_MAX_INFLIGHT    256

struct reactive;

struct reactive_worker {
    struct reactive *r;
    uv_timer_t timer; /* back-off */
    int64_t offset;   /* the page this worker is fetching */
    int attempt;      /* consecutive failures of this page */
};

struct reactive {
    uv_loop_t loop;
    struct http_client *http;
    char **headers;
    const char *base_url;
    int inflight;
    int page_size;
    int64_t max_pages; /* --requests: pages in the job, 0 = endless */
    int64_t handed;    /* pages handed to workers so far */
    int64_t next_offset;
    uint64_t rng;
    bool stopping;
    int exit_code;
    uv_timer_t stop_timer; /* the deadline, and the deferred stop */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    struct reactive_worker *workers;
    uint64_t started_ms;
    uint64_t stopped_ms;
    int64_t useful;
    int64_t rate_limited;
    int64_t errors;
    int64_t canceled;
    int64_t records;
};

static void worker_send(struct reactive_worker *w);

/* xorshift64*: jitter only, not secrets. */
static uint64_t rng_next(struct reactive *r)
{
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 0x2545F4914F6CDD1DULL;
}

/* Delay before retrying w's page: Retry-After when > 0, else full-jitter exponential. */
static uint64_t backoff_ms(struct reactive_worker *w, int64_t retry_after_ms)
{
    uint64_t ceiling = REACTIVE_BACKOFF_BASE_MS;
    int level = w->attempt < REACTIVE_MAX_LEVEL ? w->attempt : REACTIVE_MAX_LEVEL;

    if (w->attempt < INT32_MAX)
        w->attempt++;
    if (retry_after_ms > 0)
        return (uint64_t)retry_after_ms;
    for (int i = 0; i < level && ceiling < REACTIVE_BACKOFF_CAP_MS; i++)
        ceiling *= 2;
    if (ceiling > REACTIVE_BACKOFF_CAP_MS)
        ceiling = REACTIVE_BACKOFF_CAP_MS;
    return rng_next(w->r) % ceiling;
}

static void stop_now_cb(uv_timer_t *t)
{
    struct reactive *r = container_of(t, struct reactive, stop_timer);

    if (r->stopping)
        return;
    r->stopping = true;
    uv_update_time(&r->loop);
    r->stopped_ms = uv_now(&r->loop);
    for (int i = 0; i < r->inflight; i++)
        uv_close((uv_handle_t *)&r->workers[i].timer, NULL);
    uv_close((uv_handle_t *)&r->stop_timer, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    /* In-flight calls get their callbacks now, counted as canceled. */
    http_client_close(r->http);
    r->http = NULL;
}

/* Stops the run from the next loop iteration, never from inside an http callback. */
static void request_stop(struct reactive *r)
{
    if (!r->stopping)
        uv_timer_start(&r->stop_timer, stop_now_cb, 0, 0);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct reactive *r = h->data;

    (void)signum;
    request_stop(r);
}

static void retry_cb(uv_timer_t *t)
{
    struct reactive_worker *w = container_of(t, struct reactive_worker, timer);

    if (!w->r->stopping)
        worker_send(w);
}

static void worker_retry_later(struct reactive_worker *w, int64_t retry_after_ms)
{
    uv_timer_start(&w->timer, retry_cb, backoff_ms(w, retry_after_ms), 0);
}

/* Hands w the next page; false when the job has none left. */
static bool worker_take_page(struct reactive_worker *w)
{
    struct reactive *r = w->r;

    if (r->max_pages > 0 && r->handed >= r->max_pages)
        return false;
    r->handed++;
    w->offset = r->next_offset;
    r->next_offset += r->page_size;
    return true;
}

/* Counts one useful page; wraps the offsets when the tenant ran out. Returns whether w has
 * another page to fetch. */
static bool worker_page_ok(struct reactive_worker *w, int nrecords)
{
    struct reactive *r = w->r;

    r->useful++;
    r->records += nrecords;
    w->attempt = 0;
    if (nrecords < r->page_size)
        r->next_offset = 0;
    return worker_take_page(w);
}

static void done_cb(struct http_response *resp, void *data)
{
    struct reactive_worker *w = data;
    struct reactive *r = w->r;
    struct keap_verdict v;
    struct keap_page page;
    struct base_err err;
    bool more;

    if (r->stopping) {
        r->canceled++;
        return;
    }
    keap_classify_api(resp, KEAP_API_V1, base_clock_wall_ms(base_clock_system()), &v);
    switch (v.outcome) {
    case KEAP_OUTCOME_OK:
        memset(&page, 0, sizeof(page));
        if (resp->body.data == NULL ||
            keap_page_parse(resp->body.data, resp->body.len, "contacts", &page, &err) < 0) {
            r->errors++;
            worker_retry_later(w, -1);
            break;
        }
        more = worker_page_ok(w, page.nrecords);
        keap_page_free(&page);
        if (r->max_pages > 0 && r->useful >= r->max_pages)
            request_stop(r);
        else if (more)
            worker_send(w);
        break;
    case KEAP_OUTCOME_RATE_LIMITED:
        r->rate_limited++;
        worker_retry_later(w, v.retry_after_ms);
        break;
    case KEAP_OUTCOME_RETRY:
        r->errors++;
        worker_retry_later(w, -1);
        break;
    case KEAP_OUTCOME_AUTH:
    case KEAP_OUTCOME_BAD_TOKEN:
    case KEAP_OUTCOME_FATAL:
        r->errors++;
        fprintf(stderr, "bench_reactive: could not fetch page at offset %" PRId64 ": %s\n",
                w->offset, v.reason);
        r->exit_code = 1;
        request_stop(r);
        break;
    }
}

static void worker_send(struct reactive_worker *w)
{
    struct reactive *r = w->r;
    struct keap_v1_query q = {
        .limit = r->page_size,
        .offset = w->offset,
        .order = "id",
        .since_ms = -1,
        .until_ms = -1,
    };
    struct http_request req = {.method = "GET"};
    struct base_buf url;

    base_buf_init(&url, REACTIVE_MAX_URL);
    if (keap_build_v1_url(&url, r->base_url, "/v1/contacts", &q) < 0) {
        fprintf(stderr, "bench_reactive: could not build the page URL\n");
        r->exit_code = 1;
        request_stop(r);
        goto out;
    }
    req.url = url.data;
    req.headers = (const char *const *)r->headers;
    if (http_send(r->http, &req, done_cb, w) < 0) {
        r->errors++;
        worker_retry_later(w, -1);
    }
out:
    base_buf_free(&url);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_reactive [--inflight N] [--page-size P] [--seconds S] "
            "[--seed X] [--requests N]\n"
            "  needs KEAP_API_KEY and KEAP_BASE_URL (e.g. http://127.0.0.1:PORT/crm/rest)\n");
}

/* Parses "--name value" integer options; returns 0, or -1 after printing why. */
static int parse_args(int argc, char **argv, int64_t *inflight, int64_t *page_size,
                      int64_t *seconds, int64_t *seed, int64_t *requests)
{
    for (int i = 1; i < argc; i++) {
        int64_t *dst = NULL, lo = 1, hi = 0;

        if (strcmp(argv[i], "--inflight") == 0) {
            dst = inflight, hi = REACTIVE_MAX_INFLIGHT;
        } else if (strcmp(argv[i], "--page-size") == 0) {
            dst = page_size, hi = 1000;
        } else if (strcmp(argv[i], "--seconds") == 0) {
            dst = seconds, hi = 86400;
        } else if (strcmp(argv[i], "--seed") == 0) {
            dst = seed, lo = 0, hi = INT64_MAX;
        } else if (strcmp(argv[i], "--requests") == 0) {
            dst = requests, hi = INT64_MAX;
        } else {
            usage();
            return -1;
        }
        if (i + 1 >= argc || base_parse_int64(argv[i + 1], dst) < 0 || *dst < lo || *dst > hi) {
            fprintf(stderr,
                    "bench_reactive: invalid value for %s (expected %" PRId64 "..%" PRId64 ")\n",
                    argv[i], lo, hi);
            return -1;
        }
        i++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct reactive r;
    struct keap_credential cred = {0};
    struct http_options hopt = {0};
    struct base_err err;
    int64_t inflight = 20, page_size = 10, seconds = 130, seed = (int64_t)getpid(), requests = 0;
    int rc = 1;
    bool loop_ok = false, global_ok = false;

    memset(&r, 0, sizeof(r));
    if (parse_args(argc, argv, &inflight, &page_size, &seconds, &seed, &requests) < 0)
        return 2;
    r.base_url = getenv("KEAP_BASE_URL");
    if (r.base_url == NULL || strncmp(r.base_url, "http://127.0.0.1:", 17) != 0) {
        fprintf(stderr, "bench_reactive: KEAP_BASE_URL must point at keapsim on 127.0.0.1\n");
        return 2;
    }
    base_err_clear(&err);
    if (keap_credential_from_env(&cred, &err) < 0) {
        fprintf(stderr, "bench_reactive: %s\n", err.msg);
        return 2;
    }
    r.inflight = (int)inflight;
    r.page_size = (int)page_size;
    r.max_pages = requests;
    r.rng = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + 1;
    if (http_global_init() < 0) {
        fprintf(stderr, "bench_reactive: could not initialise libcurl\n");
        goto out;
    }
    global_ok = true;
    if (keap_auth_headers(&cred, &r.headers) < 0) {
        fprintf(stderr, "bench_reactive: could not build the request headers\n");
        goto out;
    }
    r.workers = calloc((size_t)r.inflight, sizeof(*r.workers));
    if (r.workers == NULL || uv_loop_init(&r.loop) != 0) {
        fprintf(stderr, "bench_reactive: out of memory\n");
        goto out;
    }
    loop_ok = true;
    hopt.max_body = REACTIVE_MAX_BODY;
    hopt.max_connections = r.inflight;
    if (http_client_new(&r.http, &r.loop, &hopt) < 0) {
        fprintf(stderr, "bench_reactive: could not create the HTTP client\n");
        goto out;
    }
    uv_timer_init(&r.loop, &r.stop_timer);
    uv_signal_init(&r.loop, &r.sigterm);
    uv_signal_init(&r.loop, &r.sigint);
    r.sigterm.data = &r;
    r.sigint.data = &r;
    uv_signal_start(&r.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&r.sigint, signal_cb, SIGINT);
    uv_timer_start(&r.stop_timer, stop_now_cb, (uint64_t)seconds * 1000, 0);
    r.started_ms = uv_now(&r.loop);
    for (int i = 0; i < r.inflight; i++) {
        struct reactive_worker *w = &r.workers[i];

        w->r = &r;
        uv_timer_init(&r.loop, &w->timer);
    }
    for (int i = 0; i < r.inflight && !r.stopping; i++)
        if (worker_take_page(&r.workers[i]))
            worker_send(&r.workers[i]);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    printf("reactive: useful=%" PRId64 " rate_limited=%" PRId64 " errors=%" PRId64
           " canceled=%" PRId64 " records=%" PRId64 " seconds=%.3f\n",
           r.useful, r.rate_limited, r.errors, r.canceled, r.records,
           (double)(r.stopped_ms - r.started_ms) / 1000.0);
    rc = r.exit_code;
out:
    if (loop_ok && uv_loop_close(&r.loop) != 0)
        fprintf(stderr, "bench_reactive: the loop did not close cleanly\n");
    free(r.workers);
    keap_headers_free(r.headers);
    keap_credential_clear(&cred);
    if (global_ok)
        http_global_cleanup();
    return rc;
}
