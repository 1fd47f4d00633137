/*
 * pace.c: admission control for the spike (per second), rolling minute and UTC day windows at
 * once, reconciliation with the server's x-keap-* headers, and the response to 429s.
 *
 * Words used here (see pace.h for the public ones):
 *   tat         theoretical arrival time of the spike window (GCRA): the earliest instant, in
 *               microseconds of the mono clock, at which the next admission keeps the even
 *               spacing of 1000/rate ms. Kept in microseconds so fractional spacings do not
 *               drift.
 *   ring        the admission times (mono ms) still inside a rolling window, oldest first. An
 *               admission at a counts in a window of span S while now < a + S; it has left
 *               the window at a + S exactly.
 *   span        the length of a rolling window as pace judges it: 1000 ms + margin for the
 *               second, 60000 ms + margin for the minute.
 *   rtt         one round trip: from an admission to its response, on the caller's mono clock.
 *   jitter      the spread of recent round trips: the 95th minus the 5th percentile of the
 *               last PACE_JITTER_SAMPLES of them.
 *   hold        a mono instant before which nothing is admitted (a 429's back-off).
 *   day hold    a wall instant before which the day is spent (a day 429, or the server said
 *               nothing is left); answered with PACE_DAY_SPENT.
 *   budget      what pace itself may admit in one UTC day: floor(per_day * (1 - reserve)).
 *   server cap  the most admissions the server still allows this UTC day, as a count of the
 *               day (admitted so far + what the server said is left, minus the reserve).
 *   server hold the server's throttle_available, when lower than our own room: that many
 *               more admissions until the rolling minute has turned over since it was said.
 *
 * Margin. The server judges its rolling windows on arrival times, and arrival = send + the
 * one-way delay l. An admission at a leaves the server's window of span W at a + l1 + W; a
 * new one sent at a + W + m arrives at a + W + m + l2, which is safe when m >= l1 - l2, the
 * jitter of the delay between two requests. So both rolling windows (the second and the
 * minute) are judged by pace with span W + m, and m is sized to the jitter measured, not to a
 * share of the rate: with even spacing at the full rate, the margin is paid once per window
 * (the L-th admission after a waits for a + W + m), about m / W of a burst.
 *   What moves an arrival against its admission a: (1) the local send delay, from the
 *   admission to curl handing the request to the socket (a loop busy with a page, a timer
 *   fired late), measured per request (pace_on_sent, CURLOPT_PREREQFUNCTION); (2) the
 *   network's one-way delay, whose variation TCP measures (TCP_INFO rttvar of the connection:
 *   microseconds on loopback, milliseconds across a region); (3) whatever sits in front of
 *   the server's counter and delays requests unevenly (a load balancer, a gateway fleet):
 *   invisible from here. The server's own time after arrival moves no arrival, yet it is
 *   most of the spread of the round trips (at Keap, hundreds of ms by endpoint and load).
 *   - Measured: the target is the spread (p95 - p5 of the last 64) of the send delays plus
 *     twice the latest rttvar (mean deviation: about the round trip's 2-sigma spread, an
 *     over-estimate of the one-way part). Round trips alone are the fallback for a caller
 *     that does not report sends: their spread bounds (1) + (2) + (3) from above, but pays
 *     the server's time in every window.
 *   - Learnt: (3) shows only as spike 429s at a full window. Each one doubles the margin (by
 *     at least PACE_MARGIN_WIDEN_MS, up to the cap) and that margin is kept as a floor of the
 *     target, given back at PACE_LEARNT_NARROW_PER_MIN ms a minute only: such jitter comes
 *     back, and each 429 costs more than a margin. A spike 429 at a window holding fewer than
 *     its limit in the last 1 s + the cap is not jitter: the server's ceiling is below ours,
 *     and the rate is cut (below), as it is once the margin is at its cap.
 *   - Bounds: at least PACE_MARGIN_FLOOR_MS (both ends truncate time to whole milliseconds,
 *     the loop fires timers late by a millisecond or so), at most PACE_MARGIN_MAX_MS
 *     (same-region HTTPS jitter is well under 250 ms).
 *   - Default: until PACE_JITTER_MIN_SAMPLES are in, the configured margin_ms (50 ms by
 *     default), a guess that the first measurement replaces at once (the round trips' spread
 *     in turn gives way at once to the sends'). The first burst rarely depends on it: the
 *     first L admissions of a window of L never meet the margin, and by the (L+1)-th the
 *     responses of the first have come back.
 *   - Widened at once when the target rises; narrowed by PACE_MARGIN_NARROW_PER_S ms a
 *     second towards it, so a burst of slow sends that left the sample is forgotten
 *     gradually.
 * The spike arrest smooths to 1000/rate ms between arrivals, so sends are spaced evenly at the
 * rate itself (never faster), and the margin lengthens one gap in L.
 *
 * Rate (AIMD). A spike 429 that arrival jitter does not explain (see "Learnt") halves the
 * current per-second rate, never below 0.5/s (or the configured rate, if lower). Recovery is
 * additive and time based: every success adds 0.1/s for each second elapsed since the last
 * cut or success, up to the configured rate, so the rate climbs back at the same pace
 * whatever it currently is (a cut from 10/s to 5/s is recovered in 50 s of successful
 * traffic). Without Retry-After a spike 429 holds admissions for one spacing, doubled for
 * each spike 429 in a row: the spike window frees within a spacing, not within seconds.
 *
 * Back-off. A 429 with Retry-After holds admissions for max(Retry-After, 250 ms); without it,
 * for an exponential delay (1 s, 2 s, 4 s, ... capped at 60 s) with equal jitter (half fixed,
 * half random) from a deterministic generator, so tests are reproducible and processes can be
 * desynchronised with pace_set_seed. A success resets the exponent.
 *
 * Midnight. A response that arrives just after 00:00 UTC may describe the day that ended: a
 * request sent at 23:59:59 can come back "0 left" or as a day 429 at 00:00:01. Taken at face
 * value that would end the new day before it starts. So day figures whose expiry is already
 * past are ignored, and in the first two minutes of a UTC day (longer than any request
 * stays in flight) day figures without an expiry are ignored and a day 429 only backs off.
 *
 * Known staleness. A response's headers count the requests that reached the server before
 * it; requests admitted since are in flight and not yet counted there. Pace cannot tell which
 * admission a response belongs to, so the server cap and server hold can be generous by the
 * number of requests in flight (a handful); the reserve and the minute margin absorb that.
 */
#include "pace.h"
#include "pace_int.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PACE_SEC_SPAN_MS           1000u
#define PACE_MIN_SPAN_MS           60000u
#define PACE_JITTER_SAMPLES        64
#define PACE_JITTER_MIN_SAMPLES    8
#define PACE_TAT_SLACK_US          1000u /* a timer this late does not push the schedule back */
#define PACE_RING_SLACK            1024u /* minute ring entries beyond per_min */
#define PACE_RETRY_FLOOR_MS        250
#define PACE_BACKOFF_BASE_MS       1000
#define PACE_BACKOFF_MAX_MS        60000
#define PACE_BACKOFF_MAX_LEVEL     16
#define PACE_RETRY_AFTER_MAX       86400000LL /* a Retry-After beyond a day is read as a day */
#define PACE_MIN_RATE              0.5
#define PACE_RECOVER_PER_SEC       0.1
#define PACE_EXPIRY_SLOP_MS        3600000LL /* expiry accepted up to 1 h past the next midnight */
#define PACE_DAY_GRACE_MS          120000LL  /* see "Midnight" above */
#define PACE_LEARNT_NARROW_PER_MIN 1.0       /* ms a minute: what spike 429s taught is kept */
#define PACE_DEFAULT_SEED          0x6b656170730a7063ULL

/* Admission times inside one rolling window, oldest first. */
struct pace_ring {
    uint64_t *t;
    size_t cap;
    size_t head;
    size_t len;
};

struct pace {
    struct pace_config cfg; /* as configured; per_day may be raised by observation */
    int share;              /* processes splitting the second and minute windows */

    /* spike window */
    double sec_eff;        /* per_sec after share; 0 = no spike window */
    int64_t sec_limit;     /* most admissions in any rolling 1 s */
    double rate;           /* current per-second rate after AIMD */
    uint64_t spacing_us;   /* ceil(1e6 / rate) */
    uint64_t tat_us;       /* GCRA: next admission allowed at or after this */
    uint64_t tat_prev_us;  /* tat before the latest admission, for its refund */
    bool tat_undo;         /* tat_prev_us is valid */
    uint64_t recover_mono; /* AIMD: recovery credited up to here */
    struct pace_ring sec;

    /* margin of both rolling windows */
    double margin;        /* ms in force */
    double margin_target; /* ms: the jitter measured, floored and capped, or the default */
    uint64_t margin_mono; /* narrowing credited up to here */
    uint32_t rtt[PACE_JITTER_SAMPLES]; /* the latest round trips, ms, a ring */
    size_t rtt_len;
    size_t rtt_next;
    int64_t jitter_ms;                  /* p95 - p5 of rtt, -1 until PACE_JITTER_MIN_SAMPLES */
    uint32_t sdel[PACE_JITTER_SAMPLES]; /* the latest send delays, ms, a ring */
    size_t sdel_len;
    size_t sdel_next;
    double net_ms;        /* the connection's one-way jitter bound (2 x TCP rttvar), ms */
    int64_t arrival_ms;   /* measured arrival jitter: send delays' spread + net_ms; -1 none */
    double learnt;        /* ms of arrival jitter learnt from spike 429s (kept, see "Margin") */
    uint64_t learnt_mono; /* its slow narrowing credited up to here */
    int measured;         /* the target's source so far: 0 the default, 1 round trips, 2 sends */

    /* minute window */
    int64_t min_eff;            /* per_min after share and the server's throttle_limit; 0 = none */
    int64_t srv_throttle_limit; /* last throttle_limit the server reported, -1 unknown */
    struct pace_ring min;
    bool srv_min_active;    /* server hold in force */
    int64_t srv_min_left;   /* admissions the server allows us before srv_min_until */
    int64_t srv_min_used;   /* admissions since srv_min_since */
    uint64_t srv_min_since; /* mono of the observation */
    uint64_t srv_min_until; /* mono when the server hold lapses */

    /* back-off */
    uint64_t hold_until; /* no admission before this mono */
    int backoff_level;   /* consecutive 429s since the last success */
    uint64_t rng;        /* jitter generator state (splitmix64) */

    /* day */
    int64_t day_start;   /* wall ms of the current UTC day's start; INT64_MIN before any */
    uint64_t day_mono;   /* mono when this day began here (refunds of older days are void) */
    int64_t tokens;      /* granted and unspent, this day */
    int64_t day_spent;   /* admitted this day, net of refunds */
    int64_t srv_day_cap; /* server cap for this day, -1 none */
    int64_t expiry_wall; /* the server's quota expiry, 0 unknown */
    bool day_hold;       /* day spent until day_hold_until */
    int64_t day_hold_until;

    uint64_t last_mono;       /* latest mono seen: time never runs backwards in here */
    uint64_t last_admit_mono; /* mono of the latest admission */

    int64_t admitted;
    int64_t refunded;
    int64_t rejected_429;
};

void pace_config_default(struct pace_config *cfg)
{
    cfg->per_sec = 10.0;
    cfg->per_min = 240;
    cfg->per_day = 30000;
    cfg->reserve_fraction = 0.0;
    cfg->margin_ms = PACE_MARGIN_DEFAULT_MS;
}

/* ---- rings ---- */

static int pace_ring_init(struct pace_ring *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    if (cap == 0)
        return BASE_OK;
    r->t = calloc(cap, sizeof(*r->t));
    if (r->t == NULL)
        return BASE_ENOMEM;
    r->cap = cap;
    return BASE_OK;
}

static uint64_t pace_ring_at(const struct pace_ring *r, size_t i)
{
    return r->t[(r->head + i) % r->cap];
}

/* Appends v (never older than the newest entry); a full ring drops its oldest entry. */
static void pace_ring_push(struct pace_ring *r, uint64_t v)
{
    if (r->cap == 0)
        return;
    if (r->len == r->cap) {
        r->head = (r->head + 1) % r->cap;
        r->len--;
    }
    r->t[(r->head + r->len) % r->cap] = v;
    r->len++;
}

/* Drops the entries that have left a window of the given span at now. */
static void pace_ring_prune(struct pace_ring *r, uint64_t now, uint64_t span)
{
    while (r->len > 0 && pace_ring_at(r, 0) + span <= now) {
        r->head = (r->head + 1) % r->cap;
        r->len--;
    }
}

/* Removes the latest entry equal to v; returns whether there was one. */
static bool pace_ring_remove_latest(struct pace_ring *r, uint64_t v)
{
    for (size_t i = r->len; i-- > 0;) {
        if (pace_ring_at(r, i) != v)
            continue;
        for (size_t j = i; j + 1 < r->len; j++)
            r->t[(r->head + j) % r->cap] = pace_ring_at(r, j + 1);
        r->len--;
        return true;
    }
    return false;
}

/*
 * The instant at which a window of the given span and limit has room again, or 0 when it has
 * room now. Exact: with no admission in between, entries only leave. Reads only the latest
 * limit entries, so it stays exact when the span has grown since entries were pruned.
 */
static uint64_t pace_ring_free_at(const struct pace_ring *r, uint64_t now, uint64_t span,
                                  int64_t limit)
{
    uint64_t t;

    if (limit <= 0 || (int64_t)r->len < limit)
        return 0;
    t = pace_ring_at(r, r->len - (size_t)limit) + span;
    return t > now ? t : 0;
}

/* The index of the oldest entry later than t - off, that is with entry + off > t (entries
 * are in order); r->len when there is none. */
static size_t pace_ring_after(const struct pace_ring *r, uint64_t t, uint64_t off)
{
    size_t lo = 0, hi = r->len;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (pace_ring_at(r, mid) + off > t)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* How many entries are still inside a window of the given span at now. */
static size_t pace_ring_count(const struct pace_ring *r, uint64_t now, uint64_t span)
{
    return r->len - pace_ring_after(r, now, span);
}

/* How many entries were inside a window of the given span at an earlier instant at. */
static size_t pace_ring_count_at(const struct pace_ring *r, uint64_t at, uint64_t span)
{
    return pace_ring_after(r, at, 0) - pace_ring_after(r, at, span);
}

/* ---- small helpers ---- */

static int64_t pace_floor_tol(double x)
{
    /* floor, forgiving binary rounding: 30000 * 0.9 is 27000, not 26999 */
    return (int64_t)floor(x + 1e-9);
}

static uint64_t pace_max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static uint64_t pace_next_random(struct pace *p)
{
    uint64_t z = (p->rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Monotonic view of the caller's clock: an earlier reading is taken as the latest one. */
static uint64_t pace_clock(struct pace *p, uint64_t now_mono)
{
    if (now_mono < p->last_mono)
        return p->last_mono;
    p->last_mono = now_mono;
    return now_mono;
}

static void pace_set_rate(struct pace *p, double rate)
{
    double lo = p->sec_eff < PACE_MIN_RATE ? p->sec_eff : PACE_MIN_RATE;

    if (p->sec_eff <= 0) {
        p->rate = 0;
        p->spacing_us = 0;
        return;
    }
    if (rate > p->sec_eff)
        rate = p->sec_eff;
    if (rate < lo)
        rate = lo;
    p->rate = rate;
    /* Even spacing at the rate itself: the margin is the windows' business (see "Margin"). */
    p->spacing_us = (uint64_t)ceil(1e6 / rate);
}

/* The margin of both rolling windows, whole ms, as pace judges them now. */
static uint64_t pace_margin(const struct pace *p)
{
    return (uint64_t)ceil(p->margin);
}

static uint64_t pace_sec_span(const struct pace *p)
{
    return PACE_SEC_SPAN_MS + pace_margin(p);
}

static uint64_t pace_min_span(const struct pace *p)
{
    return PACE_MIN_SPAN_MS + pace_margin(p);
}

/* Entries older than this have left every window whatever the margin becomes, and every
 * window as of an admission whose response is still worth reading (see pace_observe). */
#define PACE_PRUNE_SPAN_MS (2 * (uint64_t)PACE_MIN_SPAN_MS + (uint64_t)PACE_MARGIN_MAX_MS)

static double pace_clamp_margin(double m)
{
    if (m < PACE_MARGIN_FLOOR_MS)
        return PACE_MARGIN_FLOOR_MS;
    if (m > PACE_MARGIN_MAX_MS)
        return PACE_MARGIN_MAX_MS;
    return m;
}

/* Widens the margin to the target at once, or narrows it towards it by the time elapsed. */
static void pace_margin_update(struct pace *p, uint64_t now)
{
    if (p->margin < p->margin_target) {
        p->margin = p->margin_target;
    } else if (p->margin > p->margin_target && now > p->margin_mono) {
        double give = PACE_MARGIN_NARROW_PER_S * (double)(now - p->margin_mono) / 1000.0;

        p->margin = p->margin - give > p->margin_target ? p->margin - give : p->margin_target;
    }
    p->margin_mono = now;
}

static int pace_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* p95 - p5 of the n (<= PACE_JITTER_SAMPLES) samples in ms; -1 while there are too few. */
static int64_t pace_spread(const uint32_t *samples, size_t n)
{
    uint32_t v[PACE_JITTER_SAMPLES];
    size_t lo, hi;

    if (n < PACE_JITTER_MIN_SAMPLES)
        return -1;
    memcpy(v, samples, n * sizeof(v[0]));
    qsort(v, n, sizeof(v[0]), pace_cmp_u32);
    lo = (size_t)floor(0.05 * (double)(n - 1));
    hi = (size_t)ceil(0.95 * (double)(n - 1));
    return (int64_t)v[hi] - (int64_t)v[lo];
}

/* Gives back what spike 429s taught at PACE_LEARNT_NARROW_PER_MIN, down to nothing. */
static void pace_learnt_update(struct pace *p, uint64_t now)
{
    if (p->learnt > 0 && now > p->learnt_mono) {
        double give = PACE_LEARNT_NARROW_PER_MIN * (double)(now - p->learnt_mono) / 60000.0;

        p->learnt = p->learnt > give ? p->learnt - give : 0;
    }
    p->learnt_mono = now;
}

/*
 * The margin's target (see "Margin"): the arrival jitter measured when sends are reported,
 * else the round trips' spread, else the configured default; never below what spike 429s
 * taught; floored and capped. Then the margin follows it.
 */
static void pace_retarget(struct pace *p, uint64_t now)
{
    double base;
    int kind;

    if (p->arrival_ms >= 0)
        base = (double)p->arrival_ms;
    else if (p->jitter_ms >= 0)
        base = (double)p->jitter_ms;
    else
        base = (double)p->cfg.margin_ms;
    pace_learnt_update(p, now);
    p->margin_target = pace_clamp_margin(fmax(base, p->learnt));
    kind = p->arrival_ms >= 0 ? 2 : p->jitter_ms >= 0 ? 1 : 0;
    if (kind > p->measured) {
        /* The default was a guess, and the round trips' spread an over-estimate: the first
         * better measurement replaces them at once (what spike 429s taught stays). */
        p->measured = kind;
        if (p->margin > p->margin_target)
            p->margin = p->margin_target;
    }
    pace_margin_update(p, now);
}

/* Recomputes the effective second and minute ceilings from cfg, share and the server. */
static void pace_apply_limits(struct pace *p)
{
    double old_eff = p->sec_eff;
    int64_t per_min = p->cfg.per_min;

    if (p->cfg.per_sec <= 0) {
        p->sec_eff = 0;
    } else if (p->share <= 1) {
        p->sec_eff = p->cfg.per_sec;
    } else {
        p->sec_eff = floor(p->cfg.per_sec / p->share);
        if (p->sec_eff < 1)
            p->sec_eff = 1;
        if (p->sec_eff > p->cfg.per_sec)
            p->sec_eff = p->cfg.per_sec;
    }
    p->sec_limit = p->sec_eff > 0 ? (int64_t)floor(p->sec_eff) : 0;
    if (p->sec_eff > 0 && p->sec_limit < 1)
        p->sec_limit = 1;

    if (per_min > 0 && p->srv_throttle_limit > 0 && p->srv_throttle_limit < per_min)
        per_min = p->srv_throttle_limit;
    if (per_min <= 0) {
        p->min_eff = 0;
    } else {
        p->min_eff = per_min / (p->share < 1 ? 1 : p->share);
        if (p->min_eff < 1)
            p->min_eff = 1;
    }
    /* keep the AIMD position relative to the ceiling (after min_eff: it caps the spacing) */
    if (old_eff > 0 && p->rate > 0)
        pace_set_rate(p, p->sec_eff * (p->rate / old_eff));
    else
        pace_set_rate(p, p->sec_eff);
}

static int64_t pace_budget(const struct pace *p)
{
    if (p->cfg.per_day <= 0)
        return -1;
    return pace_floor_tol((double)p->cfg.per_day * (1.0 - p->cfg.reserve_fraction));
}

/* What may still be admitted today by count: min(budget, server cap); -1 when unbounded. */
static int64_t pace_day_limit(const struct pace *p)
{
    int64_t budget = pace_budget(p);

    if (p->srv_day_cap >= 0 && (budget < 0 || p->srv_day_cap < budget))
        return p->srv_day_cap;
    return budget;
}

static bool pace_expiry_valid(const struct pace *p, int64_t now_wall)
{
    return p->expiry_wall > now_wall &&
           p->expiry_wall <= base_time_next_day(now_wall) + PACE_EXPIRY_SLOP_MS;
}

/* When the server's day ends: its expiry when known and sane, else the next UTC midnight. */
static int64_t pace_server_reset(const struct pace *p, int64_t now_wall)
{
    return pace_expiry_valid(p, now_wall) ? p->expiry_wall : base_time_next_day(now_wall);
}

/* Moves to the UTC day of now_wall when it is a later day: drops tokens and day counters. */
static void pace_roll_day(struct pace *p, int64_t now_wall, uint64_t now_mono)
{
    int64_t day = base_time_day_start(now_wall);

    if (day <= p->day_start)
        return;
    p->day_start = day;
    p->day_mono = now_mono;
    p->tokens = 0;
    p->day_spent = 0;
    p->srv_day_cap = -1;
    if (p->day_hold && p->day_hold_until <= now_wall)
        p->day_hold = false;
}

/* Whether the day is spent at now_wall; if so, *retry_wall is when to ask again. */
static bool pace_day_blocked(struct pace *p, int64_t now_wall, int64_t *retry_wall)
{
    int64_t budget = pace_budget(p);

    if (p->day_hold) {
        if (now_wall < p->day_hold_until) {
            *retry_wall = p->day_hold_until;
            return true;
        }
        p->day_hold = false;
    }
    if (budget >= 0 && p->day_spent >= budget) {
        *retry_wall = base_time_next_day(now_wall);
        return true;
    }
    if (p->srv_day_cap >= 0 && p->day_spent >= p->srv_day_cap) {
        p->day_hold = true;
        p->day_hold_until = pace_server_reset(p, now_wall);
        *retry_wall = p->day_hold_until;
        return true;
    }
    return false;
}

/* The earliest mono instant at which every window has room (now when they have it now). */
static uint64_t pace_ready_at(struct pace *p, uint64_t now)
{
    uint64_t t = now;

    t = pace_max_u64(t, p->hold_until);
    if (p->sec_eff > 0) {
        t = pace_max_u64(t, (p->tat_us + 999) / 1000);
        t = pace_max_u64(t, pace_ring_free_at(&p->sec, now, pace_sec_span(p), p->sec_limit));
    }
    if (p->min_eff > 0)
        t = pace_max_u64(t, pace_ring_free_at(&p->min, now, pace_min_span(p), p->min_eff));
    if (p->srv_min_active) {
        if (now >= p->srv_min_until)
            p->srv_min_active = false;
        else if (p->srv_min_used >= p->srv_min_left)
            t = pace_max_u64(t, p->srv_min_until);
    }
    return t;
}

/* Counts one admission at now in every window. */
static void pace_admit(struct pace *p, uint64_t now)
{
    if (p->sec_eff > 0) {
        uint64_t now_us = now * 1000;

        p->tat_prev_us = p->tat_us;
        p->tat_undo = true;
        /* A caller woken a little late (whole-ms clocks, timers) keeps the schedule, so the
         * lateness does not add up over a burst; the ring still bounds every window. */
        if (p->tat_us + PACE_TAT_SLACK_US > now_us)
            p->tat_us += p->spacing_us;
        else
            p->tat_us = now_us + p->spacing_us;
        pace_ring_push(&p->sec, now);
    }
    if (p->min_eff > 0)
        pace_ring_push(&p->min, now);
    if (p->srv_min_active)
        p->srv_min_used++;
    if (p->cfg.per_day > 0)
        p->tokens--;
    p->day_spent++;
    p->admitted++;
    p->last_admit_mono = now;
}

static int pace_config_check(const struct pace_config *cfg)
{
    if (!isfinite(cfg->per_sec) || cfg->per_sec < 0 || cfg->per_sec > PACE_MAX_PER_SEC)
        return BASE_EINVAL;
    if (cfg->per_min < 0 || cfg->per_min > PACE_MAX_PER_MIN)
        return BASE_EINVAL;
    if (cfg->per_day < 0 || cfg->per_day > PACE_MAX_PER_DAY)
        return BASE_EINVAL;
    if (!isfinite(cfg->reserve_fraction) || cfg->reserve_fraction < 0 || cfg->reserve_fraction >= 1)
        return BASE_EINVAL;
    if (cfg->margin_ms > PACE_MIN_SPAN_MS)
        return BASE_EINVAL;
    return BASE_OK;
}

/* ---- public API ---- */

int pace_new(struct pace **out, const struct pace_config *cfg)
{
    struct pace *p;
    int result;

    if (out == NULL || cfg == NULL)
        return BASE_EINVAL;
    result = pace_config_check(cfg);
    if (result < 0)
        return result;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return BASE_ENOMEM;
    p->cfg = *cfg;
    p->share = 1;
    p->srv_throttle_limit = -1;
    p->margin_target = pace_clamp_margin((double)cfg->margin_ms);
    p->margin = p->margin_target;
    p->jitter_ms = -1;
    p->arrival_ms = -1;
    p->day_start = INT64_MIN;
    p->srv_day_cap = -1;
    p->rng = PACE_DEFAULT_SEED;
    result = pace_ring_init(&p->sec, cfg->per_sec > 0 ? (size_t)fmax(1.0, floor(cfg->per_sec)) : 0);
    if (result < 0)
        goto fail;
    /* room for the admissions in flight past a full minute (see pace_observe_minute) */
    result = pace_ring_init(&p->min, cfg->per_min > 0 ? (size_t)cfg->per_min + PACE_RING_SLACK : 0);
    if (result < 0)
        goto fail;
    pace_apply_limits(p);
    *out = p;
    return BASE_OK;

fail:
    pace_free(p);
    return result;
}

void pace_free(struct pace *p)
{
    if (p == NULL)
        return;
    free(p->sec.t);
    free(p->min.t);
    free(p);
}

void pace_set_seed(struct pace *p, uint64_t seed)
{
    p->rng = seed;
}

struct pace_decision pace_acquire(struct pace *p, uint64_t now_mono, int64_t now_wall)
{
    struct pace_decision d = {PACE_GO, 0, 0};
    uint64_t now = pace_clock(p, now_mono);
    uint64_t ready;

    /* The wall clock set back across midnight: follow it to the earlier day. Left on the
     * later one, the pacer would drop every grant for the clock's day (pace_grant) and the
     * run would reserve that whole day from the ledger, a grant at a time, sending nothing. */
    if (p->day_start != INT64_MIN && base_time_day_start(now_wall) < p->day_start)
        p->day_start = INT64_MIN;
    pace_roll_day(p, now_wall, now);
    if (pace_day_blocked(p, now_wall, &d.retry_wall_ms)) {
        d.verdict = PACE_DAY_SPENT;
        return d;
    }
    ready = pace_ready_at(p, now);
    if (ready > now) {
        d.verdict = PACE_WAIT;
        d.retry_mono_ms = ready;
        return d;
    }
    if (p->cfg.per_day > 0 && p->tokens <= 0) {
        d.verdict = PACE_NEED_GRANT;
        return d;
    }
    pace_admit(p, now);
    return d;
}

void pace_refund(struct pace *p, uint64_t admitted_mono, int64_t now_wall)
{
    pace_roll_day(p, now_wall, p->last_mono);
    pace_ring_remove_latest(&p->sec, admitted_mono);
    pace_ring_remove_latest(&p->min, admitted_mono);
    if (p->tat_undo && admitted_mono == p->last_admit_mono) {
        p->tat_us = p->tat_prev_us;
        p->tat_undo = false;
    }
    if (p->srv_min_active && admitted_mono >= p->srv_min_since && p->srv_min_used > 0)
        p->srv_min_used--;
    if (admitted_mono >= p->day_mono && p->day_spent > 0) {
        p->day_spent--;
        if (p->cfg.per_day > 0)
            p->tokens++;
    }
    p->refunded++;
}

void pace_grant(struct pace *p, int64_t day_wall, int64_t tokens)
{
    if (tokens <= 0)
        return;
    pace_roll_day(p, day_wall, p->last_mono);
    if (base_time_day_start(day_wall) != p->day_start)
        return; /* a grant for a day already gone */
    if (p->tokens > INT64_MAX - tokens)
        p->tokens = INT64_MAX;
    else
        p->tokens += tokens;
}

int64_t pace_unspent(const struct pace *p)
{
    return p->tokens > 0 ? p->tokens : 0;
}

void pace_observation_init(struct pace_observation *obs)
{
    obs->quota_limit = -1;
    obs->quota_available = -1;
    obs->quota_used = -1;
    obs->quota_expiry_ms = -1;
    obs->throttle_limit = -1;
    obs->throttle_available = -1;
    obs->throttle_used = -1;
    obs->tenant_throttle_limit = -1;
    obs->tenant_throttle_available = -1;
    obs->tenant_id = NULL;
    obs->admitted_mono = 0;
}

/* Whether day figures said at now_wall without a usable expiry may be yesterday's. */
static bool pace_day_young(int64_t now_wall)
{
    return now_wall - base_time_day_start(now_wall) < PACE_DAY_GRACE_MS;
}

/* The day part of an observation: raise per_day, lower the server cap, note the expiry. */
static void pace_observe_day(struct pace *p, int64_t now_wall, const struct pace_observation *o)
{
    int64_t avail = -1;

    if (p->cfg.per_day > 0 && o->quota_limit > p->cfg.per_day && o->quota_limit <= PACE_MAX_PER_DAY)
        p->cfg.per_day = o->quota_limit;
    if (o->quota_expiry_ms > 0 && o->quota_expiry_ms <= now_wall)
        return; /* figures of a quota day that has ended */
    if (o->quota_expiry_ms <= 0 && pace_day_young(now_wall))
        return; /* may be figures of the day that has just ended */
    if (o->quota_expiry_ms > 0) {
        int64_t keep = p->expiry_wall;

        p->expiry_wall = o->quota_expiry_ms;
        if (!pace_expiry_valid(p, now_wall))
            p->expiry_wall = keep;
    }
    if (o->quota_available >= 0)
        avail = o->quota_available;
    else if (o->quota_limit >= 0 && o->quota_used >= 0)
        avail = o->quota_limit > o->quota_used ? o->quota_limit - o->quota_used : 0;
    if (avail >= 0) {
        double reserve_abs = (double)p->cfg.per_day * p->cfg.reserve_fraction;
        int64_t left = pace_floor_tol((double)avail - reserve_abs);
        int64_t cap;

        if (left < 0)
            left = 0;
        cap = p->day_spent > INT64_MAX - left ? INT64_MAX : p->day_spent + left;
        if (p->srv_day_cap < 0 || cap < p->srv_day_cap)
            p->srv_day_cap = cap; /* the ledger wins when the server says more */
    }
}

/* The minute part: the server's throttle limit and what it says is left in its window. */
static void pace_observe_minute(struct pace *p, uint64_t now, const struct pace_observation *o)
{
    int64_t avail = -1, room;

    if (o->throttle_limit > 0 && o->throttle_limit != p->srv_throttle_limit) {
        p->srv_throttle_limit = o->throttle_limit;
        pace_apply_limits(p);
    }
    if (o->throttle_available >= 0)
        avail = o->throttle_available;
    else if (o->throttle_limit >= 0 && o->throttle_used >= 0)
        avail = o->throttle_limit > o->throttle_used ? o->throttle_limit - o->throttle_used : 0;
    if (o->tenant_throttle_available >= 0 && (avail < 0 || o->tenant_throttle_available < avail))
        avail = o->tenant_throttle_available;
    if (avail < 0)
        return;
    /* Not divided by the share: each process's own windows already hold it to its part of
     * the key, and dividing starved the process whose minute ran behind its peer's (it held
     * itself to half of a figure that was mostly its peer's room). This clamps only when the
     * server is fuller than our own windows say: another client of the key. */
    if (p->min_eff > 0) {
        pace_ring_prune(&p->min, now, PACE_PRUNE_SPAN_MS);
        room = p->min_eff - (int64_t)pace_ring_count(&p->min, now, pace_min_span(p));
    } else {
        room = INT64_MAX;
    }
    /* The figure is the server's as of the request's arrival, not as of now: since then our
     * own window has let old admissions go and taken in the ones in flight. Taken against
     * our room now, that staleness alone (a few requests while the minute turns over, with
     * a margin of tens of ms) read as "the server is fuller" and held admissions for a whole
     * minute once the last response said 0. So when the admission is known, the figure is
     * compared with our room as of then, and only the difference (someone else's use of the
     * key) is carried to now. */
    if (p->min_eff > 0 && o->admitted_mono > 0 && o->admitted_mono <= now &&
        now - o->admitted_mono < PACE_MIN_SPAN_MS) {
        int64_t then =
            p->min_eff - (int64_t)pace_ring_count_at(&p->min, o->admitted_mono, pace_min_span(p));

        if (avail >= then) {
            p->srv_min_active = false;
            return;
        }
        avail = room > then - avail ? room - (then - avail) : 0;
    }
    if (avail < room) {
        p->srv_min_active = true;
        p->srv_min_left = avail;
        p->srv_min_used = 0;
        p->srv_min_since = now;
        p->srv_min_until = now + pace_min_span(p);
    } else {
        p->srv_min_active = false;
    }
}

void pace_observe(struct pace *p, uint64_t now_mono, int64_t now_wall,
                  const struct pace_observation *obs)
{
    uint64_t now = pace_clock(p, now_mono);

    pace_roll_day(p, now_wall, now);
    if (obs == NULL)
        return;
    pace_observe_day(p, now_wall, obs);
    pace_observe_minute(p, now, obs);
}

/* The hold a 429 imposes, in ms from now: Retry-After or jittered exponential, floored. */
static int64_t pace_backoff(struct pace *p, int64_t retry_after_ms)
{
    int64_t d;

    if (retry_after_ms >= 0) {
        d = retry_after_ms > PACE_RETRY_AFTER_MAX ? PACE_RETRY_AFTER_MAX : retry_after_ms;
    } else {
        int64_t base = PACE_BACKOFF_BASE_MS;

        for (int i = 0; i < p->backoff_level && base < PACE_BACKOFF_MAX_MS; i++)
            base *= 2;
        if (base > PACE_BACKOFF_MAX_MS)
            base = PACE_BACKOFF_MAX_MS;
        d = base / 2 + (int64_t)(pace_next_random(p) % (uint64_t)(base / 2 + 1));
    }
    if (p->backoff_level < PACE_BACKOFF_MAX_LEVEL)
        p->backoff_level++;
    return d < PACE_RETRY_FLOOR_MS ? PACE_RETRY_FLOOR_MS : d;
}

/* A spike 429's hold without Retry-After: one spacing, doubled for each 429 in a row before
 * it (pace_backoff has counted this one), up to the back-off cap. */
static uint64_t pace_spike_hold(const struct pace *p)
{
    uint64_t d = (p->spacing_us + 999) / 1000;

    for (int i = 1; i < p->backoff_level && d < PACE_BACKOFF_MAX_MS; i++)
        d *= 2;
    return d > PACE_BACKOFF_MAX_MS ? PACE_BACKOFF_MAX_MS : d;
}

void pace_on_429(struct pace *p, uint64_t now_mono, int64_t now_wall, enum pace_limit_kind kind,
                 int64_t retry_after_ms)
{
    uint64_t now = pace_clock(p, now_mono);
    uint64_t hold;

    pace_roll_day(p, now_wall, now);
    p->rejected_429++;
    hold = now + (uint64_t)pace_backoff(p, retry_after_ms);
    switch (kind) {
    case PACE_LIMIT_SPIKE: {
        bool capped;

        pace_margin_update(p, now);
        capped = p->margin >= PACE_MARGIN_MAX_MS;
        pace_learnt_update(p, now);
        p->margin = pace_clamp_margin(fmax(2.0 * p->margin, p->margin + PACE_MARGIN_WIDEN_MS));
        p->learnt = fmax(p->learnt, p->margin);
        pace_retarget(p, now);
        /* Arrival jitter explains a spike 429 only at a full window: the refused request was
         * the (limit + 1)-th within 1 s + the jitter. With fewer admissions than the limit in
         * the last 1 s + the cap (its admission was at most a round trip ago), or with the
         * margin already at its cap, the server's ceiling is below ours: cut the rate. */
        if (capped ||
            (p->sec_eff > 0 &&
             (int64_t)pace_ring_count(
                 &p->sec, now, PACE_SEC_SPAN_MS + (uint64_t)PACE_MARGIN_MAX_MS) < p->sec_limit)) {
            pace_set_rate(p, p->rate * 0.5);
        }
        p->recover_mono = now;
        if (retry_after_ms < 0 && p->rate > 0) {
            /* The spike window frees within a spacing: hold for spacings, not seconds
             * (doubling with each spike 429 in a row), instead of the 1 s exponential. */
            hold = now + pace_spike_hold(p);
        }
        break;
    }
    case PACE_LIMIT_MINUTE: {
        size_t n;

        pace_ring_prune(&p->min, now, PACE_PRUNE_SPAN_MS);
        n = pace_ring_count(&p->min, now, pace_min_span(p));
        if (n > 0)
            hold = pace_max_u64(hold, pace_ring_at(&p->min, p->min.len - n) + pace_min_span(p));
        break;
    }
    case PACE_LIMIT_DAY:
        if (pace_day_young(now_wall) && !pace_expiry_valid(p, now_wall))
            break; /* may be yesterday's answer: back off only */
        p->day_hold = true;
        p->day_hold_until = pace_server_reset(p, now_wall);
        break;
    case PACE_LIMIT_UNKNOWN:
    default:
        break;
    }
    p->hold_until = pace_max_u64(p->hold_until, hold);
}

void pace_on_success(struct pace *p, uint64_t now_mono)
{
    uint64_t now = pace_clock(p, now_mono);

    p->backoff_level = 0;
    if (p->sec_eff > 0 && p->rate < p->sec_eff && now > p->recover_mono)
        pace_set_rate(p, p->rate + PACE_RECOVER_PER_SEC * (double)(now - p->recover_mono) / 1000.0);
    p->recover_mono = now;
    pace_retarget(p, now);
}

void pace_on_response(struct pace *p, uint64_t admitted_mono, uint64_t now_mono)
{
    uint64_t now = pace_clock(p, now_mono);
    uint64_t rtt = now > admitted_mono ? now - admitted_mono : 0;

    p->rtt[p->rtt_next] = rtt > UINT32_MAX ? UINT32_MAX : (uint32_t)rtt;
    p->rtt_next = (p->rtt_next + 1) % PACE_JITTER_SAMPLES;
    if (p->rtt_len < PACE_JITTER_SAMPLES)
        p->rtt_len++;
    p->jitter_ms = pace_spread(p->rtt, p->rtt_len);
    pace_retarget(p, now);
}

void pace_on_sent(struct pace *p, uint64_t admitted_mono, uint64_t sent_mono, int64_t net_rttvar_us,
                  int64_t net_min_rtt_us)
{
    uint64_t d = sent_mono > admitted_mono ? sent_mono - admitted_mono : 0;
    int64_t spread;

    p->sdel[p->sdel_next] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    p->sdel_next = (p->sdel_next + 1) % PACE_JITTER_SAMPLES;
    if (p->sdel_len < PACE_JITTER_SAMPLES)
        p->sdel_len++;
    /* Twice the mean deviation of the round trip, but never more than the path's least round
     * trip: on a request-response connection TCP's samples include the peer's delayed ACK
     * (measured: 15-20 ms of rttvar on loopback, where the path's own jitter is us), and
     * queueing beyond the path's least round trip is for spike 429s to teach. */
    if (net_rttvar_us >= 0) {
        double v = 2.0 * (double)net_rttvar_us;

        if (net_min_rtt_us >= 0 && (double)net_min_rtt_us < v)
            v = (double)net_min_rtt_us;
        p->net_ms = v / 1000.0;
    }
    spread = pace_spread(p->sdel, p->sdel_len);
    if (spread >= 0)
        p->arrival_ms = spread + (int64_t)ceil(p->net_ms);
    pace_retarget(p, p->last_mono);
}

void pace_set_share(struct pace *p, int n)
{
    p->share = n < 1 ? 1 : n;
    pace_apply_limits(p);
}

void pace_get_stats(const struct pace *p, struct pace_stats *out)
{
    int64_t limit = pace_day_limit(p);

    memset(out, 0, sizeof(*out));
    out->admitted = p->admitted;
    out->refunded = p->refunded;
    out->rejected_429 = p->rejected_429;
    out->current_per_sec = p->rate;
    out->day_spent = p->day_spent;
    out->margin_ms = (int64_t)pace_margin(p);
    out->jitter_ms = p->jitter_ms;
    out->arrival_ms = p->arrival_ms;
    out->learnt_ms = (int64_t)ceil(p->learnt);
    if (p->day_hold)
        out->day_left = 0;
    else if (limit < 0)
        out->day_left = -1;
    else
        out->day_left = limit > p->day_spent ? limit - p->day_spent : 0;
}

uint64_t pace_probe_interval_ms(const struct pace_config *l)
{
    uint64_t ms = 0;

    if (l->per_sec > 0)
        ms = (uint64_t)(1000.0 / l->per_sec) + 1;
    if (l->per_min > 0 && (uint64_t)(60000 / l->per_min) + 1 > ms)
        ms = (uint64_t)(60000 / l->per_min) + 1;
    return ms + ms / 10 + 5;
}
