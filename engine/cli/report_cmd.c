/*
 * report_cmd.c: `keapsync report --out FILE.html [--runs N]`: one self-contained HTML file
 * (no script, no external reference: it opens offline) with inline SVG bar charts from
 * keapsync's tables: the request rates of the last runs against the per-second and per-minute
 * ceilings, the quota used per UTC day for 30 days against the day's budget, the records
 * written per job, and each backfill's progress.
 *
 * Words used here:
 *   bar      one data point of a chart: an SVG <rect class="bar" data-value="...">, so tools
 *            (and the test) can read the figures back from the file.
 *   ceiling  a dashed line <line class="ceiling" data-value="..."> at a limit.
 */
#include "cli_int.h"
#include "plan_cmd.h"

#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char report_usage[] =
    "Usage: keapsync report --out FILE.html [--runs N]\n"
    "\n"
    "Writes one self-contained HTML file (inline SVG, no script, opens offline) from the\n"
    "history in DATABASE_URL: requests per second and per minute of the last N runs (default\n"
    "20) against KEAPSYNC_LIMITS' ceilings, the quota used per UTC day over the last 30 days\n"
    "against the daily budget, the records written per job, and each backfill's progress.\n"
    "Sends no request to Keap.\n"
    "\n"
    "  --out FILE.html  where to write it (replaced)\n"
    "  --runs N         how many of the last runs to chart (1..500, default 20)\n"
    "\n"
    "Exit codes: 0 written; 2 bad usage or configuration; 1 the database or the file failed.\n";

struct bar {
    char label[64];
    double value;
};

/* s with &, <, > and " escaped, appended to o. */
static void html_text(struct base_buf *o, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '&':
            base_buf_puts(o, "&amp;");
            break;
        case '<':
            base_buf_puts(o, "&lt;");
            break;
        case '>':
            base_buf_puts(o, "&gt;");
            break;
        case '"':
            base_buf_puts(o, "&quot;");
            break;
        default:
            base_buf_append(o, s, 1);
        }
    }
}

/*
 * One bar chart: n bars (labels under every few), scaled to the larger of the highest bar
 * and the ceiling (0: none), with the ceiling as a dashed line.
 */
static void svg_bars(struct base_buf *o, const char *id, const char *title, const char *unit,
                     const struct bar *b, size_t n, double ceiling, const char *ceiling_label)
{
    const double W = 760, H = 270, left = 90, right = 20, top = 20, bottom = 60;
    double max = ceiling, pw = W - left - right, ph = H - top - bottom, bw;
    size_t every = n > 16 ? (n + 15) / 16 : 1;

    for (size_t i = 0; i < n; i++)
        if (b[i].value > max)
            max = b[i].value;
    max = max > 0 ? max * 1.1 : 1;
    base_buf_printf(o, "<section><h2>");
    html_text(o, title);
    base_buf_printf(
        o,
        "</h2>\n<svg id=\"%s\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
        "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" data-points=\"%zu\">\n",
        id, W, H, W, H, n);
    base_buf_printf(o,
                    "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n"
                    "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#333\"/>\n"
                    "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#333\"/>\n"
                    "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"end\">%.6g</text>\n"
                    "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"end\">0</text>\n"
                    "<text x=\"4\" y=\"12\" font-size=\"11\">",
                    W, H, left, top, left, top + ph, left, top + ph, left + pw, top + ph, left - 4,
                    top + 4, max, left - 4, top + ph);
    html_text(o, unit);
    base_buf_puts(o, "</text>\n");
    if (n == 0)
        base_buf_printf(o,
                        "<text class=\"nodata\" x=\"%.0f\" y=\"%.0f\" font-size=\"14\" "
                        "text-anchor=\"middle\">no data yet</text>\n",
                        left + pw / 2, top + ph / 2);
    bw = n > 0 ? pw / (double)n : pw;
    for (size_t i = 0; i < n; i++) {
        double h = ph * b[i].value / max, x = left + bw * (double)i;

        if (b[i].value > 0 && h < 2)
            h = 2; /* a figure above zero stays visible beside a high ceiling */

        base_buf_printf(o,
                        "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                        "fill=\"#3b73b9\" data-value=\"%.6g\" data-label=\"",
                        x + bw * 0.1, top + ph - h, bw * 0.8, h, b[i].value);
        html_text(o, b[i].label);
        base_buf_puts(o, "\"><title>");
        html_text(o, b[i].label);
        base_buf_printf(o, ": %.6g</title></rect>\n", b[i].value);
        if (i % every == 0) {
            base_buf_printf(o,
                            "<text x=\"%.1f\" y=\"%.0f\" font-size=\"10\" text-anchor=\"end\" "
                            "transform=\"rotate(-30 %.1f %.0f)\">",
                            x + bw / 2, top + ph + 14, x + bw / 2, top + ph + 14);
            html_text(o, b[i].label);
            base_buf_puts(o, "</text>\n");
        }
    }
    if (ceiling > 0) {
        double y = top + ph - ph * ceiling / max;

        base_buf_printf(o,
                        "<line class=\"ceiling\" data-value=\"%.6g\" x1=\"%.0f\" y1=\"%.1f\" "
                        "x2=\"%.0f\" y2=\"%.1f\" stroke=\"#d0342c\" stroke-width=\"2\" "
                        "stroke-dasharray=\"6 4\"/>\n<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\" "
                        "fill=\"#d0342c\" text-anchor=\"end\">",
                        ceiling, left, y, left + pw, y, left + pw, y - 4);
        html_text(o, ceiling_label);
        base_buf_puts(o, "</text>\n");
    }
    base_buf_puts(o, "</svg></section>\n");
}

/* The JSON array a query returns (json_agg), parsed; NULL when empty. */
static int query_json(struct store *s, const char *sql, int nparams, const char *const *params,
                      cJSON **out, struct base_err *err)
{
    char *text = NULL;
    int rc = store_query_text(s, sql, nparams, params, &text, err);

    if (rc < 0)
        return rc;
    *out = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (*out != NULL && !cJSON_IsArray(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    return 0;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsNumber(it) ? it->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(it) ? it->valuestring : "";
}

/* Room for one bar per element of arr (NULL: none); *n their count. */
static struct bar *bars_of(const cJSON *arr, size_t *n)
{
    size_t k = arr ? (size_t)cJSON_GetArraySize(arr) : 0;

    *n = k;
    return calloc(k ? k : 1, sizeof(struct bar));
}

static int build(struct store *s, const struct pace_config *cfg, const char *tenant, int nruns,
                 const struct jobs_set *set, const struct sched_pending *p, struct base_buf *o,
                 struct base_err *err)
{
    char lim[16], ceil_label[64], now_txt[32];
    const char *params[1] = {lim};
    cJSON *runs = NULL, *days = NULL, *jobs = NULL, *it;
    struct bar *b = NULL;
    size_t n, i;
    int64_t budget =
        cfg->per_day > 0 ? (int64_t)((double)cfg->per_day * (1.0 - cfg->reserve_fraction)) : 0;
    int rc;

    snprintf(lim, sizeof(lim), "%d", nruns);
    rc = query_json(
        s,
        "SELECT json_agg(x ORDER BY id) FROM (SELECT id, to_char(started_at AT TIME ZONE 'UTC', "
        "'MM-DD HH24:MI') AS at, greatest(extract(epoch FROM finished_at - started_at), "
        "0.001)::float8 AS secs, requests, outcome FROM keapsync.runs WHERE finished_at IS NOT "
        "NULL AND requests IS NOT NULL ORDER BY id DESC LIMIT $1::int) x",
        1, params, &runs, err);
    if (rc == 0) {
        params[0] = tenant;
        rc = query_json(
            s,
            "SELECT json_agg(x ORDER BY day) FROM (SELECT to_char(d, 'YYYY-MM-DD') AS day, "
            "coalesce(l.reserved, 0) AS used FROM generate_series((now() AT TIME ZONE "
            "'UTC')::date - 29, (now() AT TIME ZONE 'UTC')::date, interval '1 day') d LEFT JOIN "
            "keapsync.quota_ledger l ON l.day = d::date AND l.tenant = $1) x",
            1, params, &days, err);
    }
    if (rc == 0)
        rc = query_json(s,
                        "SELECT json_agg(x ORDER BY job) FROM (SELECT job, sum(records)::float8 "
                        "AS records FROM keapsync.run_jobs GROUP BY job) x",
                        0, NULL, &jobs, err);
    if (rc < 0)
        goto out;
    base_time_format(base_clock_wall_ms(base_clock_system()), now_txt, sizeof(now_txt));
    base_buf_puts(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                     "<title>keapsync report</title>\n<style>body{font-family:sans-serif;"
                     "margin:24px;color:#222;background:#fff}h1{font-size:22px}h2{font-size:16px;"
                     "margin:18px 0 4px}p{font-size:13px;color:#555;max-width:760px}"
                     "svg{border:1px solid #ddd}</style></head><body>\n<h1>keapsync report</h1>\n");
    base_buf_printf(o, "<p>Generated %s (UTC) for tenant &ldquo;", now_txt);
    html_text(o, tenant);
    base_buf_puts(o, "&rdquo;. Rates are each run's average: requests over its duration per "
                     "second, and per minute over the run's minutes (a run shorter than a "
                     "minute counts as one minute).</p>\n");

    b = bars_of(runs, &n);
    if (b == NULL)
        goto nomem;
    i = 0;
    cJSON_ArrayForEach(it, runs)
    {
        snprintf(b[i].label, sizeof(b[i].label), "#%.0f %s", num(it, "id"), str(it, "at"));
        b[i].value = num(it, "requests") / num(it, "secs");
        i++;
    }
    snprintf(ceil_label, sizeof(ceil_label), "ceiling %.6g/s", cfg->per_sec);
    svg_bars(o, "rate-second", "Requests per second, last runs", "requests/s", b, n, cfg->per_sec,
             ceil_label);
    i = 0;
    cJSON_ArrayForEach(it, runs)
    {
        double mins = num(it, "secs") / 60.0;

        b[i].value = num(it, "requests") / (mins < 1 ? 1 : mins);
        i++;
    }
    snprintf(ceil_label, sizeof(ceil_label), "ceiling %" PRId64 "/min", cfg->per_min);
    svg_bars(o, "rate-minute", "Requests per minute, last runs", "requests/min", b, n,
             (double)cfg->per_min, ceil_label);
    free(b);

    b = bars_of(days, &n);
    if (b == NULL)
        goto nomem;
    i = 0;
    cJSON_ArrayForEach(it, days)
    {
        snprintf(b[i].label, sizeof(b[i].label), "%s", str(it, "day"));
        b[i].value = num(it, "used");
        i++;
    }
    snprintf(ceil_label, sizeof(ceil_label), "budget %" PRId64 "/day", budget);
    svg_bars(o, "quota-days", "Quota used per UTC day, last 30 days", "requests", b, n,
             (double)budget, ceil_label);
    free(b);

    b = bars_of(jobs, &n);
    if (b == NULL)
        goto nomem;
    i = 0;
    cJSON_ArrayForEach(it, jobs)
    {
        snprintf(b[i].label, sizeof(b[i].label), "%s", str(it, "job"));
        b[i].value = num(it, "records");
        i++;
    }
    svg_bars(o, "records-jobs", "Records written per job, all runs", "records", b, n, 0, "");
    free(b);

    n = 0;
    for (size_t j = 0; p != NULL && j < set->n; j++)
        n += p[j].nbackfills;
    b = calloc(n ? n : 1, sizeof(*b));
    if (b == NULL)
        goto nomem;
    i = 0;
    for (size_t j = 0; p != NULL && j < set->n; j++)
        for (size_t k = 0; k < p[j].nbackfills; k++, i++) {
            const struct sched_pending_backfill *bf = &p[j].backfills[k];
            int64_t span = bf->to_ms > bf->from_ms ? bf->to_ms - bf->from_ms : 1;

            snprintf(b[i].label, sizeof(b[i].label), "%s #%" PRId64, p[j].job, bf->id);
            b[i].value =
                bf->done ? 100.0 : 100.0 * (double)(bf->resume_ms - bf->from_ms) / (double)span;
        }
    svg_bars(o, "backfills", "Backfill progress", "% read", b, n, 100, "done");
    free(b);
    b = NULL;
    base_buf_puts(o, "</body></html>\n");
    goto out;
nomem:
    rc = base_err_set(err, BASE_ENOMEM, "out of memory");
out:
    free(b);
    cJSON_Delete(runs);
    cJSON_Delete(days);
    cJSON_Delete(jobs);
    return rc;
}

int cli_cmd_report(int argc, char **argv)
{
    struct base_err err;
    struct jobs_set set = {0};
    struct pace_config cfg;
    struct sched_pending *p = NULL;
    struct store *s = NULL;
    struct base_buf html;
    const char *out = NULL;
    char *tenant = NULL;
    int64_t nruns = 20;
    int code = 0;
    FILE *f;

    base_err_clear(&err);
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i]))
            return fputs(report_usage, stdout), 0;
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            if (base_parse_int64(argv[++i], &nruns) < 0 || nruns < 1 || nruns > 500) {
                base_err_set(&err, BASE_ECONFIG, "invalid --runs \"%s\"", argv[i]);
                base_err_hint(&err, "give a number of runs from 1 to 500");
                return cli_fail(CLI_EXIT_CONFIG, &err);
            }
        } else
            return cli_fail_option("report", argv[i]);
    }
    if (out == NULL)
        return cli_fail_usage("report needs --out FILE.html%s", "");
    if (cli_load_limits(&cfg, &err) < 0 || cli_load_jobs(&set, NULL, &err) < 0)
        return cli_fail(CLI_EXIT_CONFIG, &err);
    if (cli_connect_migrated(&s, &err) < 0) {
        jobs_set_free(&set);
        return cli_fail(CLI_EXIT_CONFIG, &err);
    }
    base_buf_init(&html, 16 * 1024 * 1024);
    if (cli_plan_tenant(s, cli_env_or("KEAP_BASE_URL", KEAP_DEFAULT_BASE_URL), &tenant, &err) < 0 ||
        sched_pending_work(s, &set, NULL, &p, &err) < 0 ||
        build(s, &cfg, tenant, (int)nruns, &set, p, &html, &err) < 0) {
        code = cli_fail(EXIT_FAILURE, &err);
        goto done;
    }
    f = fopen(out, "w");
    if (f != NULL) {
        bool ok = fwrite(html.data, 1, html.len, f) == html.len;

        if (fclose(f) != 0 || !ok)
            f = NULL;
    }
    if (f == NULL) {
        base_err_set(&err, BASE_EIO, "could not write \"%s\": %s", out, strerror(errno));
        code = cli_fail(EXIT_FAILURE, &err);
        goto done;
    }
    printf("report: %s written (%zu bytes)\n", out, html.len);
done:
    base_buf_free(&html);
    sched_pending_free(p, set.n);
    free(tenant);
    store_close(s);
    jobs_set_free(&set);
    return code;
}
