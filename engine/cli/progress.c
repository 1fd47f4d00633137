/*
 * progress.c: what `keapsync run` shows while it runs (sched_options.progress_cb).
 *
 * On a terminal (stderr is a tty): one live line per active job (records, pages, requests,
 * records per second) and one for the run (requests, their rate, today's quota left and how
 * long it lasts at that rate), redrawn in place at most four times a second; log lines clear
 * it first and it is drawn again below them. Elsewhere: plain log lines, one per active job
 * and one for the run every KEAPSYNC_PROGRESS_SECONDS (default 10), never an escape code.
 */
#include "cli_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
    pthread_mutex_t mu;
    bool tty;
    int drawn;      /* lines of the live display on the terminal now */
    double every_s; /* non-terminal: seconds between reports */
    double last_s;  /* when the last report was written */
} pg = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Erases the live display (caller holds mu). */
static void erase_locked(void)
{
    for (int i = 0; i < pg.drawn; i++)
        fputs("\033[1A\r\033[2K", stderr);
    pg.drawn = 0;
}

static void before_log_line(void)
{
    pthread_mutex_lock(&pg.mu);
    erase_locked();
    pthread_mutex_unlock(&pg.mu);
}

/* "1 h 20 min", "5 min", "40 s". */
static void span(double s, char *buf, size_t n)
{
    int64_t t = (int64_t)s;

    if (t >= 3600)
        snprintf(buf, n, "%" PRId64 " h %" PRId64 " min", t / 3600, (t % 3600) / 60);
    else if (t >= 60)
        snprintf(buf, n, "%" PRId64 " min", t / 60);
    else
        snprintf(buf, n, "%" PRId64 " s", t);
}

static void run_line(const struct sched_progress *p, char *buf, size_t n)
{
    double rate = p->seconds > 0.5 ? (double)p->requests / p->seconds : 0;
    char lasts[32] = "";

    if (p->quota_left >= 0 && rate > 0)
        span((double)p->quota_left / rate, lasts, sizeof(lasts));
    if (p->quota_left < 0)
        snprintf(buf, n, "run: %" PRId64 " requests (%.1f/s), %.0f s, quota left unknown",
                 p->requests, rate, p->seconds);
    else
        snprintf(buf, n,
                 "run: %" PRId64 " requests (%.1f/s), %.0f s, quota left %" PRId64
                 " requests%s%s%s",
                 p->requests, rate, p->seconds, p->quota_left, lasts[0] ? " (lasts ~" : "", lasts,
                 lasts[0] ? " at this rate)" : "");
}

static void job_line(const struct sched_job_result *j, double seconds, char *buf, size_t n)
{
    snprintf(
        buf, n,
        "job \"%s\": %" PRId64 " records, %" PRId64 " pages, %" PRId64 " requests, %.0f records/s",
        j->name, j->rows, j->pages, j->requests, seconds > 0.5 ? (double)j->rows / seconds : 0.0);
}

static void progress_cb(const struct sched_progress *p, void *ud)
{
    char line[512];

    (void)ud;
    if (!pg.tty) {
        if (p->seconds - pg.last_s + 0.1 < pg.every_s)
            return;
        pg.last_s = p->seconds;
        for (size_t i = 0; i < p->njobs; i++)
            if (p->jobs[i]->state == 0 /* SCHED_JOB_PAGING */ && p->jobs[i]->requests > 0) {
                job_line(p->jobs[i], p->seconds, line, sizeof(line));
                base_log_info("%s (progress)", line);
            }
        run_line(p, line, sizeof(line));
        base_log_info("%s (progress)", line);
        return;
    }
    pthread_mutex_lock(&pg.mu);
    erase_locked();
    for (size_t i = 0; i < p->njobs; i++)
        if (p->jobs[i]->state == 0 /* SCHED_JOB_PAGING */ && p->jobs[i]->requests > 0) {
            job_line(p->jobs[i], p->seconds, line, sizeof(line));
            fprintf(stderr, "%.*s\n", 160, line);
            pg.drawn++;
        }
    run_line(p, line, sizeof(line));
    fprintf(stderr, "%.*s\n", 160, line);
    pg.drawn++;
    fflush(stderr);
    pthread_mutex_unlock(&pg.mu);
}

void cli_progress_begin(struct sched_options *opt)
{
    const char *every = cli_env_or("KEAPSYNC_PROGRESS_SECONDS", NULL);
    double v;

    pg.tty = isatty(STDERR_FILENO) != 0;
    pg.every_s = 10;
    if (every != NULL && base_parse_double(every, &v) == 0 && v > 0)
        pg.every_s = v;
    pg.last_s = 0;
    pg.drawn = 0;
    opt->progress_cb = progress_cb;
    opt->progress_ud = NULL;
    opt->progress_ms = pg.tty ? 250 : 1000;
    if (pg.tty)
        base_log_set_hook(before_log_line);
}

void cli_progress_end(void)
{
    pthread_mutex_lock(&pg.mu);
    erase_locked();
    pthread_mutex_unlock(&pg.mu);
    base_log_set_hook(NULL);
}
