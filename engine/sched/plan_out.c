/*
 * plan_out.c: the quota plan (plan.c) as text and as JSON (`keapsync plan [--json]`), and the
 * one line a run stopped at the quota ends with (what is left, and when the next UTC day
 * starts).
 */
#include "sched_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *kind_name(enum sched_plan_kind k)
{
    switch (k) {
    case SCHED_PLAN_LIST:
        return "list";
    case SCHED_PLAN_CHILD:
        return "child";
    case SCHED_PLAN_BACKFILL:
        return "backfill";
    case SCHED_PLAN_SWEEP:
        return "sweep";
    }
    return "list";
}

int sched_plan_json(const struct sched_plan *p, struct base_buf *out)
{
    cJSON *root = cJSON_CreateObject(), *jobs = NULL;
    char next[32], *text = NULL;
    int rc = BASE_ENOMEM;

    if (root == NULL)
        return BASE_ENOMEM;
    base_time_format(p->next_day_ms, next, sizeof(next));
    if (cJSON_AddNumberToObject(root, "total_requests", (double)p->total_requests) == NULL ||
        cJSON_AddNumberToObject(root, "days", p->days) == NULL ||
        cJSON_AddStringToObject(root, "finish_date", p->days > 0 ? p->finish_date : "") == NULL ||
        cJSON_AddNumberToObject(root, "today_left", (double)p->today_left) == NULL ||
        cJSON_AddNumberToObject(root, "daily_budget", (double)p->daily) == NULL ||
        cJSON_AddNumberToObject(root, "daily_quota", (double)p->per_day) == NULL ||
        cJSON_AddNumberToObject(root, "reserve_fraction", p->reserve_fraction) == NULL ||
        cJSON_AddNumberToObject(root, "probe_requests", (double)p->probe_requests) == NULL ||
        cJSON_AddBoolToObject(root, "quota_headers_seen", p->headers_seen) == NULL ||
        cJSON_AddStringToObject(root, "next_day", next) == NULL ||
        (jobs = cJSON_AddArrayToObject(root, "jobs")) == NULL)
        goto out;
    for (size_t i = 0; i < p->njobs; i++) {
        const struct sched_plan_job *j = &p->jobs[i];
        cJSON *o = cJSON_CreateObject();

        if (o == NULL)
            goto out;
        cJSON_AddItemToArray(jobs, o);
        if (cJSON_AddStringToObject(o, "name", j->name) == NULL ||
            cJSON_AddStringToObject(o, "kind", kind_name(j->kind)) == NULL ||
            cJSON_AddStringToObject(o, "pass", j->pass ? j->pass : "") == NULL ||
            cJSON_AddNumberToObject(o, "records", (double)j->records) == NULL ||
            cJSON_AddNumberToObject(o, "requests", (double)j->requests) == NULL ||
            cJSON_AddNumberToObject(o, "recost_per_day", (double)j->recost) == NULL ||
            cJSON_AddNumberToObject(o, "sweep_requests", (double)j->sweep_requests) == NULL ||
            cJSON_AddStringToObject(o, "source", j->source) == NULL ||
            cJSON_AddStringToObject(o, "detail", j->detail) == NULL ||
            cJSON_AddNumberToObject(o, "finish_day", j->finish_day) == NULL ||
            cJSON_AddStringToObject(o, "finish_date", j->finish_date) == NULL)
            goto out;
    }
    text = cJSON_PrintUnformatted(root);
    if (text == NULL)
        goto out;
    rc = base_buf_printf(out, "%s\n", text);
out:
    cJSON_free(text);
    cJSON_Delete(root);
    return rc;
}

int sched_plan_text(const struct sched_plan *p, struct base_buf *out)
{
    int rc = base_buf_printf(out, "%-16s %-8s %-11s %10s %9s  %-10s  %s\n", "job", "kind", "pass",
                             "records", "requests", "finishes", "source");

    for (size_t i = 0; rc == 0 && i < p->njobs; i++) {
        const struct sched_plan_job *j = &p->jobs[i];
        char recs[24];

        if (j->records < 0)
            snprintf(recs, sizeof(recs), "?");
        else
            snprintf(recs, sizeof(recs), "%" PRId64, j->records);
        rc = base_buf_printf(out, "%-16s %-8s %-11s %10s %9" PRId64 "  %-10s  %s (%s)\n", j->name,
                             kind_name(j->kind), j->pass ? j->pass : "", recs, j->requests,
                             j->finish_date, j->source, j->detail);
    }
    if (rc == 0 && p->daily > 0)
        rc = base_buf_printf(
            out,
            "plan: %" PRId64 " requests over %d day%s, finishing %s; today %" PRId64 " of %" PRId64
            " left (%" PRId64 "/day less the %.0f%% reserve%s); "
            "%" PRId64 " probe requests spent\n",
            p->total_requests, p->days, p->days == 1 ? "" : "s",
            p->days > 0 ? p->finish_date : "today", p->today_left, p->daily, p->per_day,
            p->reserve_fraction * 100.0, p->headers_seen ? ", Keap's quota headers read" : "",
            p->probe_requests);
    else if (rc == 0)
        rc =
            base_buf_printf(out,
                            "plan: %" PRId64 " requests over %d day%s (no daily limit); %" PRId64
                            " probe requests spent\n",
                            p->total_requests, p->days, p->days == 1 ? "" : "s", p->probe_requests);
    return rc;
}

void sched_plan_stop_line(const struct sched_plan *p, const struct sched_result *res, char *buf,
                          size_t n)
{
    struct base_buf b;
    char next[32], until[96] = "";
    int64_t left = 0, now = p->now_ms;
    int njobs = 0, listed = 0;
    double hours = (double)(p->next_day_ms - now) / 3600000.0;

    base_buf_init(&b, 4096);
    for (size_t i = 0; i < res->njobs; i++) {
        const struct sched_job_result *r = &res->jobs[i];

        if (r->state == SCHED_JOB_DONE)
            continue;
        for (size_t k = 0; k < p->njobs; k++) {
            if (strcmp(p->jobs[k].name, r->name) != 0)
                continue;
            njobs++;
            left += p->jobs[k].requests;
            if (listed < 6)
                base_buf_printf(&b, "%s%s ~%" PRId64, listed ? ", " : "", r->name,
                                p->jobs[k].requests);
            listed++;
        }
    }
    if (listed > 6)
        base_buf_printf(&b, ", ...");
    base_time_format(p->next_day_ms, next, sizeof(next));
    if (p->daily > 0 && p->days > 0)
        snprintf(until, sizeof(until), ", done by %s at %" PRId64 " a day", p->finish_date,
                 p->daily);
    snprintf(buf, n,
             "the day's request budget is spent; left: %d job%s, ~%" PRId64 " requests (%s)%s; "
             "run again after 00:00 UTC: the next UTC day starts %.19sZ, in %.1f h",
             njobs, njobs == 1 ? "" : "s", left, b.data ? b.data : "", until, next, hours);
    base_buf_free(&b);
}
