/*
 * limits.c: keapsim's rate limits, its clocks and its request counters.
 *
 * Windows (see keapsim.h): the spike arrest and the rolling minute belong to a key, the
 * tenant-wide rolling minute and the UTC day to the tenant (all keys share the day, as Keap
 * counts PAT/SAK quota per tenant). A request is counted at arrival. Decisions:
 *   - checks run second, minute, tenant minute, day; the first full one refuses;
 *   - a refused request (429) counts in no window: not in the day (Keap's day counts served
 *     calls) and not in the minute (so a client that backs off recovers after 60 s, not later);
 *   - the day is the UTC day of the sim clock (CLOCK_REALTIME + admin offset) and resets when
 *     that clock enters a new day; rolling windows use CLOCK_MONOTONIC.
 * max_in_1s / max_in_60s record the largest count of accepted requests in any rolling window
 * at an arrival: what a client that promises "never more than 10 in a second" is judged by.
 */
#include "keapsim.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t sim_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sim_wall_ms_locked(const struct sim *s)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + s->clock_offset_ms;
}

int64_t sim_wall_ms(struct sim *s)
{
    int64_t v;

    pthread_mutex_lock(&s->mu);
    v = sim_wall_ms_locked(s);
    pthread_mutex_unlock(&s->mu);
    return v;
}

int sim_win_init(struct sim_win *w)
{
    memset(w, 0, sizeof(*w));
    w->bucket = calloc(SIM_WIN_MS, sizeof(*w->bucket));
    if (w->bucket == NULL)
        return BASE_ENOMEM;
    w->last_ms = sim_mono_ms();
    return 0;
}

void sim_win_free(struct sim_win *w)
{
    if (w == NULL)
        return;
    free(w->bucket);
    w->bucket = NULL;
}

void sim_win_clear(struct sim_win *w)
{
    memset(w->bucket, 0, SIM_WIN_MS * sizeof(*w->bucket));
    w->sum1 = w->sum60 = 0;
}

void sim_win_advance(struct sim_win *w, int64_t now_ms)
{
    int64_t t;

    if (now_ms <= w->last_ms)
        return;
    if (now_ms - w->last_ms >= SIM_WIN_MS) {
        sim_win_clear(w);
        w->last_ms = now_ms;
        return;
    }
    for (t = w->last_ms + 1; t <= now_ms; t++) {
        /* bucket t-1000 leaves the second; bucket t-60000 (same slot as t) leaves the minute */
        w->sum1 -= w->bucket[(t - 1000) % SIM_WIN_MS];
        w->sum60 -= w->bucket[t % SIM_WIN_MS];
        w->bucket[t % SIM_WIN_MS] = 0;
    }
    w->last_ms = now_ms;
}

void sim_win_add(struct sim_win *w)
{
    w->bucket[w->last_ms % SIM_WIN_MS]++;
    w->sum1++;
    w->sum60++;
}

/* Milliseconds until the oldest request still in the last span ms leaves it. */
static int64_t win_oldest_leaves_in(const struct sim_win *w, int64_t span)
{
    int64_t t;

    for (t = w->last_ms - span + 1; t <= w->last_ms; t++)
        if (w->bucket[t % SIM_WIN_MS] != 0)
            return t + span - w->last_ms;
    return 0;
}

int sim_limits_init(struct sim *s)
{
    size_t i;
    int rc;

    rc = sim_win_init(&s->tenant_win);
    for (i = 0; rc == 0 && i <= SIM_MAX_KEYS; i++)
        rc = sim_win_init(&s->keys[i].win);
    if (rc < 0) {
        sim_limits_free(s);
        return rc;
    }
    s->day_start_ms = base_time_day_start(sim_wall_ms_locked(s));
    s->st.hist_start_s = sim_wall_ms_locked(s) / 1000;
    return 0;
}

void sim_limits_free(struct sim *s)
{
    size_t i;

    sim_win_free(&s->tenant_win);
    for (i = 0; i <= SIM_MAX_KEYS; i++)
        sim_win_free(&s->keys[i].win);
}

void sim_limits_reset(struct sim *s)
{
    size_t i;

    pthread_mutex_lock(&s->mu);
    sim_win_clear(&s->tenant_win);
    for (i = 0; i <= SIM_MAX_KEYS; i++) {
        sim_win_clear(&s->keys[i].win);
        memset(&s->keys[i].st, 0, sizeof(s->keys[i].st));
    }
    s->day_used = 0;
    s->day_start_ms = base_time_day_start(sim_wall_ms_locked(s));
    memset(&s->st, 0, sizeof(s->st));
    s->st.hist_start_s = sim_wall_ms_locked(s) / 1000;
    pthread_mutex_unlock(&s->mu);
}

/* Adds one accepted request at wall second sec to the per-second histogram. */
static void hist_add(struct sim_stats *st, int64_t sec)
{
    int64_t shift;

    if (sec < st->hist_start_s)
        return; /* the clock went back: drop rather than misplace */
    shift = sec - st->hist_start_s - (SIM_HIST_SECONDS - 1);
    if (shift > 0) {
        if (shift >= SIM_HIST_SECONDS) {
            memset(st->hist, 0, sizeof(st->hist));
        } else {
            memmove(st->hist, st->hist + shift,
                    (size_t)(SIM_HIST_SECONDS - shift) * sizeof(st->hist[0]));
            memset(st->hist + (SIM_HIST_SECONDS - shift), 0, (size_t)shift * sizeof(st->hist[0]));
        }
        st->hist_start_s += shift;
    }
    st->hist[sec - st->hist_start_s]++;
}

static void fill_view(struct sim *s, struct sim_key *key, int64_t wall, struct sim_quota_view *view)
{
    const struct sim_limits *lim = &s->cfg.lim;

    view->day_limit = lim->per_day;
    view->day_used = s->day_used;
    view->day_expiry_ms = base_time_next_day(wall);
    view->thr_limit = lim->per_min;
    view->thr_used = key ? (int64_t)key->win.sum60 : 0;
    view->ten_limit = lim->tenant_per_min;
    view->ten_used = (int64_t)s->tenant_win.sum60;
    view->spike_limit = lim->per_s;
}

enum sim_verdict sim_limits_admit(struct sim *s, struct sim_key *key, struct sim_quota_view *view)
{
    const struct sim_limits *lim = &s->cfg.lim;
    enum sim_verdict v = SIM_VERDICT_OK;
    int64_t mono = sim_mono_ms(), wall;

    pthread_mutex_lock(&s->mu);
    wall = sim_wall_ms_locked(s);
    if (base_time_day_start(wall) != s->day_start_ms) {
        s->day_start_ms = base_time_day_start(wall);
        s->day_used = 0;
    }
    sim_win_advance(&s->tenant_win, mono);
    s->st.requests++;
    if (key == NULL) {
        s->st.rejected_401++;
        fill_view(s, NULL, wall, view);
        pthread_mutex_unlock(&s->mu);
        return SIM_VERDICT_OK;
    }
    sim_win_advance(&key->win, mono);
    key->st.requests++;
    if (s->st.first_request_ms == 0)
        s->st.first_request_ms = mono;
    s->st.last_request_ms = mono;
    if (lim->per_s > 0 && key->win.sum1 >= (uint64_t)lim->per_s)
        v = SIM_VERDICT_SECOND;
    else if (lim->per_min > 0 && key->win.sum60 >= (uint64_t)lim->per_min)
        v = SIM_VERDICT_MINUTE;
    else if (lim->tenant_per_min > 0 && s->tenant_win.sum60 >= (uint64_t)lim->tenant_per_min)
        v = SIM_VERDICT_TENANT;
    else if (lim->per_day > 0 && s->day_used >= lim->per_day)
        v = SIM_VERDICT_DAY;

    switch (v) {
    case SIM_VERDICT_OK:
        sim_win_add(&key->win);
        sim_win_add(&s->tenant_win);
        s->day_used++;
        s->st.accepted++;
        key->st.accepted++;
        if (s->st.first_accepted_ms == 0)
            s->st.first_accepted_ms = mono;
        s->st.last_accepted_ms = mono;
        if (s->tenant_win.sum1 > s->st.max_in_1s)
            s->st.max_in_1s = s->tenant_win.sum1;
        if (s->tenant_win.sum60 > s->st.max_in_60s)
            s->st.max_in_60s = s->tenant_win.sum60;
        if (key->win.sum1 > key->st.max_in_1s)
            key->st.max_in_1s = key->win.sum1;
        if (key->win.sum60 > key->st.max_in_60s)
            key->st.max_in_60s = key->win.sum60;
        hist_add(&s->st, wall / 1000);
        break;
    case SIM_VERDICT_SECOND:
        s->st.rej_second++;
        key->st.rej_second++;
        break;
    case SIM_VERDICT_MINUTE:
        s->st.rej_minute++;
        key->st.rej_minute++;
        break;
    case SIM_VERDICT_TENANT:
        s->st.rej_tenant++;
        break;
    case SIM_VERDICT_DAY:
        s->st.rej_day++;
        break;
    }
    if (v != SIM_VERDICT_OK) {
        s->st.rejected_429++;
        key->st.rejected_429++;
    }
    fill_view(s, key, wall, view);
    pthread_mutex_unlock(&s->mu);
    return v;
}

int64_t sim_limits_retry_ms(struct sim *s, struct sim_key *key, enum sim_verdict v)
{
    int64_t ms = 0;

    pthread_mutex_lock(&s->mu);
    switch (v) {
    case SIM_VERDICT_OK:
        break;
    case SIM_VERDICT_SECOND:
        ms = win_oldest_leaves_in(&key->win, 1000);
        break;
    case SIM_VERDICT_MINUTE:
        ms = win_oldest_leaves_in(&key->win, SIM_WIN_MS);
        break;
    case SIM_VERDICT_TENANT:
        ms = win_oldest_leaves_in(&s->tenant_win, SIM_WIN_MS);
        break;
    case SIM_VERDICT_DAY:
        ms = base_time_next_day(sim_wall_ms_locked(s)) - sim_wall_ms_locked(s);
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return ms;
}

int sim_limits_parse(const char *spec, struct sim_limits *lim)
{
    struct sim_limits out = *lim;
    const char *p = spec;

    if (spec == NULL || *spec == '\0')
        return BASE_EINVAL;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64], *slash;
        int64_t n;

        if (len == 0 || len >= sizeof(item))
            return BASE_EINVAL;
        memcpy(item, p, len);
        item[len] = '\0';
        slash = strchr(item, '/');
        if (slash == NULL)
            return BASE_EINVAL;
        *slash = '\0';
        if (base_parse_int64(item, &n) < 0 || n < 0)
            return BASE_EINVAL;
        if (strcmp(slash + 1, "s") == 0 || strcmp(slash + 1, "sec") == 0)
            out.per_s = n;
        else if (strcmp(slash + 1, "min") == 0 || strcmp(slash + 1, "m") == 0)
            out.per_min = n;
        else if (strcmp(slash + 1, "day") == 0 || strcmp(slash + 1, "d") == 0)
            out.per_day = n;
        else
            return BASE_EINVAL;
        p += len;
        if (*p == ',')
            p++;
    }
    *lim = out;
    return 0;
}
