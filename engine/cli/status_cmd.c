/*
 * status_cmd.c: `keapsync status [--json]`: per job its last run (outcome, records), its
 * watermark, where its checkpoint stands, its backfills and its next scheduled run; per tenant
 * today's quota used and left and when it resets; then the pending sweeps and backfills.
 * Exits 1 if a job's last finished run failed (or crashed).
 *
 * Words used here:
 *   human time  "2026-12-03 16:40:00Z" (text output); JSON has ISO-8601 "2026-12-03T16:40:00Z".
 *   next run    the daemon's next tick for the job; "-" (JSON null) while nothing schedules
 *               jobs (keapsync run is started by cron or a timer, which status cannot see).
 */
#include "cli_int.h"
#include "plan_cmd.h"

#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char status_usage[] =
    "Usage: keapsync status [--json]\n"
    "\n"
    "Shows, from DATABASE_URL (no request to Keap), for each job in KEAPSYNC_JOBS: its last\n"
    "run (id, start, outcome, records written), its watermark (the end of the last complete\n"
    "window), where its checkpoint stands (idle, or reading a window at an offset), its\n"
    "backfills' progress and its next scheduled run (\"-\" when nothing schedules it); for the\n"
    "tenant: today's requests used and left of the daily budget and when the quota resets\n"
    "(00:00 UTC); then each job's delete sweeps and backfills. Times are UTC.\n"
    "\n"
    "  --json   one JSON object instead (README, \"keapsync status --json\"): ISO-8601 times,\n"
    "           null where there is nothing to show\n"
    "\n"
    "Exit codes: 0 no job's last run failed; 1 a job's last run failed or crashed (said on\n"
    "stderr), or the database could not be read; 2 bad usage or configuration.\n";

/* "2026-12-03 16:40:00Z" (human) or "2026-12-03T16:40:00Z" (iso); buf >= 24 bytes. */
static const char *fmt_time(int64_t ms, bool iso, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms < 0 || gmtime_r(&t, &tm) == NULL ||
        strftime(buf, n, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
        snprintf(buf, n, "-");
    return buf;
}

/* "7 h 20 min", "12 min", "40 s". */
static const char *fmt_span(int64_t ms, char *buf, size_t n)
{
    int64_t s = ms / 1000;

    if (s >= 3600)
        snprintf(buf, n, "%" PRId64 " h %" PRId64 " min", s / 3600, (s % 3600) / 60);
    else if (s >= 60)
        snprintf(buf, n, "%" PRId64 " min", s / 60);
    else
        snprintf(buf, n, "%" PRId64 " s", s < 0 ? 0 : s);
    return buf;
}

static cJSON *json_time(int64_t ms)
{
    char buf[32];

    return ms < 0 ? cJSON_CreateNull() : cJSON_CreateString(fmt_time(ms, true, buf, sizeof(buf)));
}

/* A number, or null when v < 0 (nothing recorded). */
static cJSON *json_num(int64_t v)
{
    return v < 0 ? cJSON_CreateNull() : cJSON_CreateNumber((double)v);
}

/* What a job's checkpoint says, read from its JSON text (sched/cursor.c's keys). */
struct ckpt_view {
    bool present;
    int64_t watermark_ms; /* -1: none */
    bool in_window;
    int64_t since_ms, until_ms, offset, pages;
};

static void ckpt_read(const char *text, struct ckpt_view *v)
{
    cJSON *root = text ? cJSON_Parse(text) : NULL, *w, *it;

    memset(v, 0, sizeof(*v));
    v->watermark_ms = v->since_ms = v->until_ms = -1;
    if (root == NULL)
        return;
    v->present = true;
    it = cJSON_GetObjectItemCaseSensitive(root, "watermark_ms");
    if (cJSON_IsNumber(it))
        v->watermark_ms = (int64_t)it->valuedouble;
    w = cJSON_GetObjectItemCaseSensitive(root, "window");
    if (cJSON_IsObject(w)) {
        v->in_window = true;
        it = cJSON_GetObjectItemCaseSensitive(w, "since_ms");
        v->since_ms = cJSON_IsNumber(it) ? (int64_t)it->valuedouble : -1;
        it = cJSON_GetObjectItemCaseSensitive(w, "until_ms");
        v->until_ms = cJSON_IsNumber(it) ? (int64_t)it->valuedouble : -1;
        it = cJSON_GetObjectItemCaseSensitive(w, "offset");
        v->offset = cJSON_IsNumber(it) ? (int64_t)it->valuedouble : 0;
        it = cJSON_GetObjectItemCaseSensitive(w, "pages");
        v->pages = cJSON_IsNumber(it) ? (int64_t)it->valuedouble : 0;
    }
    cJSON_Delete(root);
}

static void ckpt_words(const struct ckpt_view *v, char *buf, size_t n)
{
    char a[32];

    if (!v->present)
        snprintf(buf, n, "never synced");
    else if (!v->in_window)
        snprintf(buf, n, "idle");
    else if (v->since_ms >= 0)
        snprintf(buf, n, "reading since %s, offset %" PRId64, fmt_time(v->since_ms, false, a, 32),
                 v->offset);
    else
        snprintf(buf, n, "reading, offset %" PRId64 ", %" PRId64 " pages", v->offset, v->pages);
}

/* A backfill's share read, 0..100. */
static double backfill_pct(const struct sched_pending_backfill *bf)
{
    int64_t span = bf->to_ms > bf->from_ms ? bf->to_ms - bf->from_ms : 1;

    return bf->done ? 100.0 : 100.0 * (double)(bf->resume_ms - bf->from_ms) / (double)span;
}

/* The text table: rows of ncol cells, printed with each column as wide as its widest cell. */
#define NCOL 8
struct table {
    char (*cells)[NCOL][96];
    size_t n;
};

static void table_print(const struct table *t)
{
    size_t w[NCOL] = {0};

    for (size_t r = 0; r < t->n; r++)
        for (int c = 0; c < NCOL; c++)
            if (strlen(t->cells[r][c]) > w[c])
                w[c] = strlen(t->cells[r][c]);
    for (size_t r = 0; r < t->n; r++) {
        for (int c = 0; c + 1 < NCOL; c++)
            printf("%-*s  ", (int)w[c], t->cells[r][c]);
        printf("%s\n", t->cells[r][NCOL - 1]);
    }
}

/* Did job's last finished run fail? Says so on stderr. */
static bool last_run_failed(struct store *s, const char *job, bool *failed)
{
    struct store_run_info last;
    struct base_err err;
    bool found = false;

    base_err_clear(&err);
    if (store_run_last(s, job, &last, &found, &err) < 0) {
        cli_fail(EXIT_FAILURE, &err);
        return false;
    }
    *failed = found && store_run_outcome_failed(last.outcome);
    if (*failed) {
        char code[32] = "";

        if (last.exit_code >= 0)
            snprintf(code, sizeof(code), ", exit code %d", last.exit_code);
        fprintf(stderr,
                "keapsync: error: the last run of job \"%s\" failed (run %" PRId64 ", %s%s)%s%s\n",
                job, last.id, last.outcome, code, last.message[0] != '\0' ? ": " : "",
                last.message);
    }
    return true;
}

/* The tenant's quota today: the ledger key, the budget after the reserve, used and left. */
struct quota_view {
    char *tenant;
    int64_t now_ms, reset_ms;
    int64_t budget; /* 0: no daily limit */
    int64_t used, spent, left;
};

static int quota_read(struct store *s, struct quota_view *q, struct base_err *err)
{
    struct pace_config cfg;
    struct store_ledger_row row = {0, 0};
    int rc;

    memset(q, 0, sizeof(*q));
    rc = cli_load_limits(&cfg, err);
    if (rc < 0)
        return rc;
    rc = cli_plan_tenant(s, cli_env_or("KEAP_BASE_URL", KEAP_DEFAULT_BASE_URL), &q->tenant, err);
    if (rc < 0)
        return rc;
    q->now_ms = base_clock_wall_ms(base_clock_system());
    q->reset_ms = base_time_next_day(q->now_ms);
    rc = store_ledger_get(s, q->tenant, q->now_ms, &row, err);
    if (rc < 0)
        return rc;
    q->budget = cfg.per_day > 0 ? (int64_t)((double)cfg.per_day * (1.0 - cfg.reserve_fraction)) : 0;
    q->used = row.reserved;
    q->spent = row.spent;
    q->left = q->budget > 0 ? (q->budget > q->used ? q->budget - q->used : 0) : -1;
    return 0;
}

struct job_view {
    const char *name;
    bool have_run;
    struct store_job_run run;
    struct ckpt_view ck;
    bool failed;
    int64_t next_ms; /* the daemon's next run of the job, or -1 */
};

static void print_text(const struct jobs_set *set, const struct job_view *v,
                       const struct sched_pending *p, const struct quota_view *q)
{
    struct table t = {calloc(set->n + 1, sizeof(*t.cells)), 0};
    char a[32], b[32], c[32], day[16];

    if (t.cells != NULL) {
        static const char *const head[NCOL] = {"JOB",       "LAST RUN",   "OUTCOME",  "RECORDS",
                                               "WATERMARK", "CHECKPOINT", "BACKFILL", "NEXT RUN"};

        for (int k = 0; k < NCOL; k++)
            snprintf(t.cells[0][k], sizeof(t.cells[0][k]), "%s", head[k]);
        t.n = 1;
        for (size_t i = 0; i < set->n; i++) {
            char(*row)[96] = t.cells[t.n++];
            size_t open = 0;
            double pct = 0;

            snprintf(row[0], 96, "%s", v[i].name);
            if (v[i].have_run) {
                snprintf(row[1], 96, "#%" PRId64 " %s", v[i].run.id,
                         fmt_time(v[i].run.started_ms, false, a, sizeof(a)));
                snprintf(row[2], 96, "%s", v[i].run.outcome);
                if (v[i].run.have_job)
                    snprintf(row[3], 96, "%" PRId64, v[i].run.records);
                else
                    snprintf(row[3], 96, "-");
            } else {
                snprintf(row[1], 96, "never");
                snprintf(row[2], 96, "-");
                snprintf(row[3], 96, "-");
            }
            snprintf(row[4], 96, "%s", fmt_time(v[i].ck.watermark_ms, false, a, sizeof(a)));
            ckpt_words(&v[i].ck, row[5], 96);
            for (size_t k = 0; p != NULL && k < p[i].nbackfills; k++)
                if (!p[i].backfills[k].done) {
                    open++;
                    pct += backfill_pct(&p[i].backfills[k]);
                }
            if (p != NULL && p[i].nbackfills == 0)
                snprintf(row[6], 96, "-");
            else if (open == 0)
                snprintf(row[6], 96, "done");
            else
                snprintf(row[6], 96, "%.0f %% (%zu open)", pct / (double)open, open);
            if (v[i].next_ms >= 0)
                snprintf(row[7], 96, "%s", fmt_time(v[i].next_ms, false, a, sizeof(a)));
            else
                snprintf(row[7], 96, "-");
        }
        table_print(&t);
        free(t.cells);
    }
    base_time_format_day(q->now_ms, day, sizeof(day));
    if (q->budget > 0)
        printf("tenant \"%s\": today (%s) %" PRId64 " of %" PRId64 " requests used, %" PRId64
               " left; the quota resets %s (in %s)\n",
               q->tenant, day, q->used, q->budget, q->left,
               fmt_time(q->reset_ms, false, a, sizeof(a)),
               fmt_span(q->reset_ms - q->now_ms, b, sizeof(b)));
    else
        printf("tenant \"%s\": today (%s) %" PRId64 " requests used, no daily limit set\n",
               q->tenant, day, q->used);
    for (size_t i = 0; p != NULL && i < set->n; i++) {
        if (p[i].sweep_days <= 0)
            continue;
        printf("sweep \"%s\": every %d days, last completed %s, %s\n", p[i].job, p[i].sweep_days,
               p[i].last_sweep_ms >= 0 ? fmt_time(p[i].last_sweep_ms, false, a, sizeof(a))
                                       : "never",
               p[i].sweep_running ? "in progress"
               : p[i].sweep_due   ? "due at the next run"
                                  : "not due");
    }
    for (size_t i = 0; p != NULL && i < set->n; i++)
        for (size_t k = 0; k < p[i].nbackfills; k++) {
            const struct sched_pending_backfill *bf = &p[i].backfills[k];

            printf("backfill %" PRId64 " \"%s\": from %s to %s, read through %s (%.0f %%), %s\n",
                   bf->id, p[i].job, fmt_time(bf->from_ms, false, a, sizeof(a)),
                   fmt_time(bf->to_ms, false, b, sizeof(b)),
                   fmt_time(bf->resume_ms, false, c, sizeof(c)), backfill_pct(bf),
                   bf->done ? "done" : "not done");
        }
}

static int print_json(const struct jobs_set *set, const struct job_view *v,
                      const struct sched_pending *p, const struct quota_view *q, bool failed)
{
    cJSON *root = cJSON_CreateObject(), *jobs, *tn;
    char day[16], *text;

    if (root == NULL)
        return -1;
    cJSON_AddItemToObject(root, "generated_at", json_time(q->now_ms));
    cJSON_AddBoolToObject(root, "failed", failed);
    jobs = cJSON_AddArrayToObject(root, "jobs");
    for (size_t i = 0; jobs != NULL && i < set->n; i++) {
        cJSON *j = cJSON_CreateObject(), *r, *ck, *bfs;

        if (j == NULL)
            break;
        cJSON_AddItemToArray(jobs, j);
        cJSON_AddStringToObject(j, "name", v[i].name);
        if (v[i].have_run && (r = cJSON_AddObjectToObject(j, "last_run")) != NULL) {
            cJSON_AddNumberToObject(r, "id", (double)v[i].run.id);
            cJSON_AddItemToObject(r, "started_at", json_time(v[i].run.started_ms));
            cJSON_AddItemToObject(r, "finished_at", json_time(v[i].run.finished_ms));
            cJSON_AddStringToObject(r, "outcome", v[i].run.outcome);
            cJSON_AddItemToObject(r, "exit_code", json_num(v[i].run.exit_code));
            if (v[i].run.message[0] != '\0')
                cJSON_AddStringToObject(r, "message", v[i].run.message);
            else
                cJSON_AddNullToObject(r, "message");
            cJSON_AddItemToObject(r, "job_state",
                                  v[i].run.have_job ? cJSON_CreateString(v[i].run.state)
                                                    : cJSON_CreateNull());
            cJSON_AddItemToObject(r, "records",
                                  json_num(v[i].run.have_job ? v[i].run.records : -1));
            cJSON_AddItemToObject(r, "requests",
                                  json_num(v[i].run.have_job ? v[i].run.requests : -1));
            cJSON_AddItemToObject(r, "bytes", json_num(v[i].run.have_job ? v[i].run.bytes : -1));
        } else {
            cJSON_AddNullToObject(j, "last_run");
        }
        cJSON_AddBoolToObject(j, "last_run_failed", v[i].failed);
        cJSON_AddItemToObject(j, "watermark", json_time(v[i].ck.watermark_ms));
        if (v[i].ck.present && (ck = cJSON_AddObjectToObject(j, "checkpoint")) != NULL) {
            cJSON_AddStringToObject(ck, "state", v[i].ck.in_window ? "reading" : "idle");
            cJSON_AddItemToObject(ck, "since",
                                  json_time(v[i].ck.in_window ? v[i].ck.since_ms : -1));
            cJSON_AddItemToObject(ck, "until",
                                  json_time(v[i].ck.in_window ? v[i].ck.until_ms : -1));
            cJSON_AddItemToObject(ck, "offset", json_num(v[i].ck.in_window ? v[i].ck.offset : -1));
            cJSON_AddItemToObject(ck, "pages", json_num(v[i].ck.in_window ? v[i].ck.pages : -1));
        } else {
            cJSON_AddNullToObject(j, "checkpoint");
        }
        if (p != NULL && p[i].sweep_days > 0) {
            cJSON *sw = cJSON_AddObjectToObject(j, "sweep");

            if (sw != NULL) {
                cJSON_AddNumberToObject(sw, "every_days", p[i].sweep_days);
                cJSON_AddItemToObject(sw, "last_completed", json_time(p[i].last_sweep_ms));
                cJSON_AddStringToObject(sw, "state",
                                        p[i].sweep_running ? "running"
                                        : p[i].sweep_due   ? "due"
                                                           : "not_due");
            }
        } else {
            cJSON_AddNullToObject(j, "sweep");
        }
        bfs = cJSON_AddArrayToObject(j, "backfills");
        for (size_t k = 0; bfs != NULL && p != NULL && k < p[i].nbackfills; k++) {
            const struct sched_pending_backfill *bf = &p[i].backfills[k];
            cJSON *o = cJSON_CreateObject();

            if (o == NULL)
                break;
            cJSON_AddItemToArray(bfs, o);
            cJSON_AddNumberToObject(o, "id", (double)bf->id);
            cJSON_AddItemToObject(o, "from", json_time(bf->from_ms));
            cJSON_AddItemToObject(o, "to", json_time(bf->to_ms));
            cJSON_AddItemToObject(o, "read_through", json_time(bf->resume_ms));
            cJSON_AddNumberToObject(o, "percent", (double)(int)(backfill_pct(bf) * 10) / 10.0);
            cJSON_AddBoolToObject(o, "done", bf->done);
        }
        cJSON_AddItemToObject(j, "next_run", json_time(v[i].next_ms));
    }
    if ((tn = cJSON_AddObjectToObject(root, "tenant")) != NULL) {
        base_time_format_day(q->now_ms, day, sizeof(day));
        cJSON_AddStringToObject(tn, "name", q->tenant);
        cJSON_AddStringToObject(tn, "day", day);
        cJSON_AddItemToObject(tn, "budget", json_num(q->budget > 0 ? q->budget : -1));
        cJSON_AddNumberToObject(tn, "used", (double)q->used);
        cJSON_AddNumberToObject(tn, "spent", (double)q->spent);
        cJSON_AddItemToObject(tn, "left", json_num(q->left));
        cJSON_AddItemToObject(tn, "resets_at", json_time(q->reset_ms));
    }
    text = cJSON_Print(root);
    cJSON_Delete(root);
    if (text == NULL)
        return -1;
    puts(text);
    free(text);
    return 0;
}

int cli_cmd_status(int argc, char **argv)
{
    struct base_err err;
    struct jobs_set set = {0};
    struct sched_pending *p = NULL;
    struct job_view *v = NULL;
    struct quota_view q = {0};
    struct store *s;
    bool json = false, any_failed = false;
    int code = 0;

    base_err_clear(&err);
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i]))
            return fputs(status_usage, stdout), 0;
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else
            return cli_fail_option("status", argv[i]);
    }
    if (cli_load_jobs(&set, NULL, &err) < 0)
        return cli_fail(CLI_EXIT_CONFIG, &err);
    if (cli_connect_migrated(&s, &err) < 0) {
        jobs_set_free(&set);
        return cli_fail(CLI_EXIT_CONFIG, &err);
    }
    if (quota_read(s, &q, &err) < 0) {
        code = cli_fail(err.code == BASE_ECONFIG ? CLI_EXIT_CONFIG : EXIT_FAILURE, &err);
        goto out;
    }
    v = calloc(set.n ? set.n : 1, sizeof(*v));
    if (v == NULL) {
        base_err_set(&err, BASE_ENOMEM, "out of memory");
        code = cli_fail(EXIT_FAILURE, &err);
        goto out;
    }
    for (size_t i = 0; i < set.n; i++) {
        char *ckpt = NULL;

        v[i].name = set.jobs[i].name;
        if (store_checkpoint_load(s, set.jobs[i].name, &ckpt, &err) < 0 ||
            store_job_run_last(s, set.jobs[i].name, &v[i].run, &v[i].have_run, &err) < 0 ||
            store_daemon_next(s, set.jobs[i].name, &v[i].next_ms, &err) < 0) {
            free(ckpt);
            code = cli_fail(EXIT_FAILURE, &err);
            goto out;
        }
        ckpt_read(ckpt, &v[i].ck);
        free(ckpt);
        if (!last_run_failed(s, set.jobs[i].name, &v[i].failed))
            code = EXIT_FAILURE;
        any_failed = any_failed || v[i].failed;
    }
    if (sched_pending_work(s, &set, NULL, &p, &err) < 0) {
        code = cli_fail(EXIT_FAILURE, &err);
        goto out;
    }
    if (json) {
        if (print_json(&set, v, p, &q, any_failed) < 0) {
            base_err_set(&err, BASE_ENOMEM, "out of memory");
            code = cli_fail(EXIT_FAILURE, &err);
        }
    } else {
        print_text(&set, v, p, &q);
    }
    if (any_failed)
        code = EXIT_FAILURE;
out:
    sched_pending_free(p, set.n);
    free(v);
    free(q.tenant);
    store_close(s);
    jobs_set_free(&set);
    return code;
}
