/*
 * result.c: the run's result (struct sched_result): how the run ended and what each job did.
 */
#include "sched_int.h"

#include <stdio.h>
#include <stdlib.h>

const char *sched_job_state_name(int state)
{
    switch (state) {
    case SCHED_JOB_PAGING:
        return "paging";
    case SCHED_JOB_DONE:
        return "done";
    case SCHED_JOB_FAILED:
        return "failed";
    case SCHED_JOB_STOPPED:
        return "stopped";
    case SCHED_JOB_SKIPPED:
        return "skipped";
    default:
        return "unknown";
    }
}

void sched_result_free(struct sched_result *res)
{
    if (res == NULL)
        return;
    free(res->jobs);
    res->jobs = NULL;
    res->njobs = 0;
}

/* Fills in res (its jobs already hold their own figures) from the run that ended. */
void sched_result_fill(const struct sched *s, struct sched_result *res)
{
    res->requests = s->requests;
    res->rejected_429 = s->rejected_429;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(res->rejected_429_by); i++)
        res->rejected_429_by[i] = s->rejected_429_by[i];
    for (size_t i = 0; i < BASE_ARRAY_SIZE(res->commit_buckets); i++)
        res->commit_buckets[i] = s->commit_buckets[i];
    res->commit_seconds = s->commit_seconds;
    res->seconds = (double)(now_mono(s) - s->started_mono) / 1000.0;
    snprintf(res->message, sizeof(res->message), "%s", s->message);
    {
        bool failed = false, incomplete = false;

        for (size_t i = 0; i < s->njobs; i++) {
            res->rows += s->jobs[i].res->rows;
            res->bytes += s->jobs[i].res->bytes;
            if (s->jobs[i].state == SCHED_JOB_FAILED)
                failed = true;
            /* a job a peer runs is not ours to complete */
            if (s->jobs[i].state != SCHED_JOB_DONE && s->jobs[i].state != SCHED_JOB_SKIPPED)
                incomplete = true;
        }
        if (s->stop == STOP_NOMEM)
            res->outcome = SCHED_OUTCOME_NOMEM;
        else if (s->stop == STOP_AUTH)
            res->outcome = SCHED_OUTCOME_AUTH;
        else if (s->stop == STOP_SIGNAL)
            res->outcome = SCHED_OUTCOME_INTERRUPTED;
        else if (failed)
            res->outcome = SCHED_OUTCOME_FAILED;
        else if (s->stop == STOP_QUOTA && incomplete)
            res->outcome = SCHED_OUTCOME_QUOTA;
        else
            res->outcome = incomplete ? SCHED_OUTCOME_FAILED : SCHED_OUTCOME_COMPLETE;
    }
}
