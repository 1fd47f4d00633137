/*
 * pace: admission control for several rate windows at once. Pure: no I/O, no clock reads;
 * every call takes the current monotonic ms (windows) and wall ms (UTC day) from its caller,
 * so tests drive it on a fake clock.
 *
 * Words used here:
 *   window      a ceiling over a span: the spike window (per second, evenly spaced), the
 *               rolling minute, and the UTC day.
 *   admit       count one request in every window at once; all-or-nothing.
 *   refund      undo an admission whose request was never sent.
 *   grant       day tokens handed to pace by the durable ledger (store); one admitted
 *               request spends one token. Without tokens pace answers PACE_NEED_GRANT.
 *   observation what the server's x-keap-* headers said; the server is the truth.
 *   share       how many processes split this key's per-second and per-minute windows.
 *   margin      extra span added to both rolling windows (the second and the minute),
 *               because the server judges them at arrival time, which jitters relative to
 *               our admission time. Sized to the arrival jitter measured (pace_on_sent: send
 *               delays and the network's), or else the round trips' spread; widened on a
 *               spike 429 and kept (pace.c, "Margin").
 */
#ifndef KEAPSYNC_PACE_H
#define KEAPSYNC_PACE_H

#include "base.h"

#include <stdbool.h>
#include <stdint.h>

struct pace_config {
    double per_sec;          /* spike ceiling, requests per second; 0 = no such window */
    int64_t per_min;         /* rolling 60 s ceiling; 0 = none */
    int64_t per_day;         /* UTC day ceiling; 0 = none */
    double reserve_fraction; /* share of per_day left to the tenant's other integrations */
    uint32_t margin_ms;      /* margin of the rolling windows until round trips are measured */
};

/*
 * The margin's bounds and steps, in ms (pace.c, "Margin", says why these): the default until
 * round trips are measured, the floor and the cap of any margin, the least a spike 429 widens
 * it by (it doubles it otherwise), and what each second without a spike 429 gives back.
 */
#define PACE_MARGIN_DEFAULT_MS   50u
#define PACE_MARGIN_FLOOR_MS     10.0
#define PACE_MARGIN_MAX_MS       250.0
#define PACE_MARGIN_WIDEN_MS     25.0
#define PACE_MARGIN_NARROW_PER_S 1.0

/* Defaults: 10/s, 240/min, 30000/day, no reserve, default margin. */
void pace_config_default(struct pace_config *cfg);

/*
 * Parses KEAPSYNC_LIMITS, e.g. "10/s,240/min,30000/day" (units: s, sec, second, min,
 * minute, day; any subset, any order). Windows not named keep cfg's values. On error, cfg is
 * untouched and err names the bad item.
 */
int pace_config_parse(const char *spec, struct pace_config *cfg, struct base_err *err);

/* Parses a reserve such as "10%" or "0.1" into reserve_fraction. */
int pace_reserve_parse(const char *spec, double *fraction, struct base_err *err);

struct pace;

int pace_new(struct pace **out, const struct pace_config *cfg);
void pace_free(struct pace *p); /* accepts NULL */
/*
 * Seeds the back-off jitter. pace_new seeds a fixed value, so a run is reproducible; give
 * processes sharing a key different seeds (the pid, say) so their retries do not line up.
 */
void pace_set_seed(struct pace *p, uint64_t seed);

enum pace_verdict {
    PACE_GO = 0,         /* admitted: counted in every window, one grant token spent */
    PACE_WAIT = 1,       /* not now: ask again at *retry_mono_ms */
    PACE_NEED_GRANT = 2, /* windows have room but no day tokens: ask the ledger, then retry */
    PACE_DAY_SPENT = 3,  /* the UTC day's budget is gone: nothing until *retry_wall_ms */
};

struct pace_decision {
    enum pace_verdict verdict;
    uint64_t retry_mono_ms; /* PACE_WAIT: earliest mono time worth asking again */
    int64_t retry_wall_ms;  /* PACE_DAY_SPENT: next UTC midnight (or the server's expiry) */
};

/* Asks to send one request now. */
struct pace_decision pace_acquire(struct pace *p, uint64_t now_mono, int64_t now_wall);

/* Undoes one PACE_GO whose request was never sent (admitted at admitted_mono). */
void pace_refund(struct pace *p, uint64_t admitted_mono, int64_t now_wall);

/*
 * Day tokens from the ledger for the UTC day holding day_wall. Tokens of an earlier day are
 * dropped when the day changes (the ledger's reservation of that day is simply unused).
 */
void pace_grant(struct pace *p, int64_t day_wall, int64_t tokens);
/* Tokens granted and not yet spent, for the current day (to hand back to the ledger). */
int64_t pace_unspent(const struct pace *p);

/* What the response headers said; -1 (or NULL tenant) for a header missing or blank. */
struct pace_observation {
    int64_t quota_limit;
    int64_t quota_available;
    int64_t quota_used;
    int64_t quota_expiry_ms; /* epoch ms of the next reset */
    int64_t throttle_limit;
    int64_t throttle_available;
    int64_t throttle_used;
    int64_t tenant_throttle_limit;
    int64_t tenant_throttle_available;
    const char *tenant_id;  /* borrowed for the duration of the call */
    uint64_t admitted_mono; /* when the request this answers was admitted; 0 unknown */
};
void pace_observation_init(struct pace_observation *obs); /* all -1 / NULL / 0 */

/*
 * Reconciles the server's view into the windows. Lowers what pace thinks is left when the
 * server says less; raises the day's ceiling when the server reports a larger quota_limit.
 * Missing fields change nothing. The minute's figures are the server's as of the request's
 * arrival: with admitted_mono set they are weighed against pace's own minute as of that
 * admission, so the requests that left or joined it since do not read as another client.
 */
void pace_observe(struct pace *p, uint64_t now_mono, int64_t now_wall,
                  const struct pace_observation *obs);

enum pace_limit_kind {
    PACE_LIMIT_UNKNOWN = 0, /* a 429 that does not say which window */
    PACE_LIMIT_SPIKE,       /* per-second spike arrest */
    PACE_LIMIT_MINUTE,      /* rolling minute throttle (key or tenant) */
    PACE_LIMIT_DAY,         /* daily quota */
};

/*
 * A 429. retry_after_ms is the server's Retry-After (>= 0) or -1 when absent. A spike 429
 * multiplies the per-second rate down (recovering additively on success); a day 429 ends the
 * day; every 429 holds all admissions until the back-off (Retry-After or jittered
 * exponential, never less than a floor, so a Retry-After of 0 cannot spin).
 */
void pace_on_429(struct pace *p, uint64_t now_mono, int64_t now_wall, enum pace_limit_kind kind,
                 int64_t retry_after_ms);

/* A request that completed without a 429: drives the additive recovery of the rate. */
void pace_on_success(struct pace *p, uint64_t now_mono);

/*
 * A response (any HTTP status, 429 included) to the request admitted at admitted_mono came
 * back at now_mono: one round trip for the jitter that sizes the margin.
 */
void pace_on_response(struct pace *p, uint64_t admitted_mono, uint64_t now_mono);

/*
 * The request admitted at admitted_mono reached the network at sent_mono (curl was about to
 * write it; same clock, ms), over a connection whose TCP_INFO rttvar and min_rtt are
 * net_rttvar_us and net_min_rtt_us (-1 unknown): the two parts of the delay before arrival
 * that this side can measure. Once
 * PACE_JITTER_MIN_SAMPLES are in, they size the margin instead of the round trips' spread
 * (which counts the server's time, and that does not move arrivals); what they cannot see
 * (jitter in front of the server's counter) is learnt from spike 429s (pace.c, "Margin").
 */
void pace_on_sent(struct pace *p, uint64_t admitted_mono, uint64_t sent_mono, int64_t net_rttvar_us,
                  int64_t net_min_rtt_us);

/* Splits this key's per-second and per-minute ceilings across n processes (n >= 1). */
void pace_set_share(struct pace *p, int n);

/*
 * Parses a Retry-After value: delta seconds ("3", "0") or an HTTP date
 * ("Wed, 21 Oct 2015 07:28:00 GMT"). Result in ms from now_wall, never negative.
 */
int pace_parse_retry_after(const char *value, int64_t now_wall, int64_t *delay_ms);

struct pace_stats {
    int64_t admitted;
    int64_t refunded;
    int64_t rejected_429;
    double current_per_sec; /* after AIMD */
    int64_t margin_ms;      /* of both rolling windows, in force now */
    int64_t jitter_ms;      /* p95 - p5 of recent round trips; -1 until enough are in */
    int64_t arrival_ms;     /* measured arrival jitter (send delays, network); -1 until reported */
    int64_t learnt_ms;      /* arrival jitter learnt from spike 429s, kept; 0 none */
    int64_t day_spent;      /* admitted today (this process) */
    int64_t day_left;       /* what pace believes is left today, after the reserve; -1 unknown */
};
void pace_get_stats(const struct pace *p, struct pace_stats *out);

/* The spacing (ms) that keeps requests sent one after another, evenly, under l's second and
 * minute ceilings, with a margin: for probes outside the paced loop (check, plan). */
uint64_t pace_probe_interval_ms(const struct pace_config *l);

#endif
