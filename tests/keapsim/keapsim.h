/*
 * keapsim.h: the private header shared by keapsim's files. keapsim is a simulated Keap
 * tenant: the only Keap the engine meets before a customer's account (tests/keapsim/README.md).
 *
 * Words used here:
 *   tenant     the one simulated Keap account: its data set, its day quota, its tenant-wide
 *              per-minute throttle.
 *   key        an API key (PAT/SAK) or an OAuth2 principal (phase 2) allowed to call the API;
 *              each has its own spike arrest (per second) and rolling-minute throttle. A key is
 *              known by its id ("key1", ...) in stats and fault strings, never by its secret.
 *   window     a rolling count of accepted requests kept in per-millisecond buckets over the
 *              last 60 s (sim_win); the day is a plain counter reset at 00:00 UTC.
 *   sim clock  CLOCK_REALTIME (so faketime moves it) plus the admin offset; it decides the UTC
 *              day and stamps mutations. Rolling windows use CLOCK_MONOTONIC.
 *   record     one contact: its ordering keys and its v1 JSON, rendered once when the record is
 *              created or changed ("body" without the closing brace, "cf" the custom fields).
 *   list       every other resource of KEAP_API.md's table (lists.c): records computed on
 *              demand from (seed, resource, index) and rendered from the spec's schema (gen.c).
 */
#ifndef KEAPSIM_H
#define KEAPSIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

struct MHD_Connection;
struct sim_lists;

#define SIM_MAX_KEYS     16
#define SIM_WIN_MS       60000 /* the longest rolling window */
#define SIM_BODY_MAX     (64 * 1024)
#define SIM_PAGE_MAX     1000
#define SIM_DEFAULT_KEY  "keapsim-test-key"
#define SIM_CONTENT_TYPE "application/json;charset=UTF-8"
#define SIM_MAX_FAULTS   32
#define SIM_MAX_TOKENS   256
#define SIM_HIST_SECONDS 120
#define SIM_TAG_FIRST    91 /* tag ids are 91..120, the ones contacts' tag_ids use */
#define SIM_TAG_COUNT    30

/* Rolling window: per-ms buckets of accepted requests over the last SIM_WIN_MS. */
struct sim_win {
    uint32_t *bucket; /* SIM_WIN_MS counters, indexed by mono ms modulo SIM_WIN_MS */
    int64_t last_ms;  /* the mono ms the sums are up to date for */
    uint64_t sum1;    /* accepted in (last_ms - 1000, last_ms] */
    uint64_t sum60;   /* accepted in (last_ms - 60000, last_ms] */
};

int sim_win_init(struct sim_win *w);
void sim_win_free(struct sim_win *w);
/* Moves the window to now_ms (monotonic, never backwards) and drops what fell out. */
void sim_win_advance(struct sim_win *w, int64_t now_ms);
/* Counts one accepted request at the window's current ms. */
void sim_win_add(struct sim_win *w);
void sim_win_clear(struct sim_win *w);

/* Ceilings; 0 means "no limit". */
struct sim_limits {
    int64_t per_s;
    int64_t per_min;
    int64_t per_day;
    int64_t tenant_per_min;
};

struct sim_key_stats {
    uint64_t requests;
    uint64_t accepted;
    uint64_t rejected_429;
    uint64_t rej_second;
    uint64_t rej_minute;
    uint64_t max_in_1s;
    uint64_t max_in_60s;
};

/* A caller allowed to use the API. */
struct sim_key {
    char id[24];          /* public name: "key1", ... or "oauth" */
    char *secret;         /* the API key (NULL for the OAuth principal) */
    bool revoked;         /* refused from revoke_at_ms (sim clock) on */
    int64_t revoke_at_ms; /* 0: not scheduled */
    struct sim_win win;   /* spike and rolling minute of this key */
    struct sim_key_stats st;
};

/* Why a request was refused by the limits, or not. */
enum sim_verdict {
    SIM_VERDICT_OK = 0,
    SIM_VERDICT_SECOND, /* the key's spike arrest */
    SIM_VERDICT_MINUTE, /* the key's rolling minute */
    SIM_VERDICT_TENANT, /* the tenant-wide rolling minute */
    SIM_VERDICT_DAY,    /* the tenant's UTC day */
};

/* What the x-keap-* headers say after a request was counted. */
struct sim_quota_view {
    int64_t day_limit, day_used, day_expiry_ms;
    int64_t thr_limit, thr_used;
    int64_t ten_limit, ten_used;
    int64_t spike_limit;
};

/* One record of the data set (see the file header). */
struct sim_contact {
    int64_t id;
    int64_t created_ms;
    int64_t updated_ms;
    uint32_t version; /* bumped by each update; the fields derive from (seed, id, version) */
    char name[64];    /* order key "name": given + " " + family */
    char email[96];   /* order key "email": first email address or "" */
    char *body;       /* v1 JSON without its closing brace */
    size_t body_len;
    char *cf; /* ",\"custom_fields\":[...]" */
    size_t cf_len;
    char *v2; /* the v2 JSON (complete) */
    size_t v2_len;
};

struct sim_data {
    pthread_rwlock_t lock;
    uint64_t seed;
    struct sim_contact *recs; /* sorted by id, ascending */
    size_t n, cap;
    int64_t max_id;
    uint64_t rng; /* for mutations (under the write lock) */
    uint64_t created, updated, deleted;
};

/* Kinds of injected fault (faults.c). */
enum sim_fault_kind {
    SIM_FAULT_LATENCY = 0,
    SIM_FAULT_5XX,
    SIM_FAULT_RESET,     /* connection closed mid-body */
    SIM_FAULT_TRUNCATE,  /* body cut short, then closed */
    SIM_FAULT_MALFORMED, /* JSON that does not parse */
    SIM_FAULT_HTML,      /* an HTML error page with a 502 */
    SIM_FAULT_DRIP,      /* body sent slowly in small pieces */
    SIM_FAULT_BARE429,   /* 429 without x-keap headers or body */
    SIM_FAULT_NOHEADERS, /* x-keap headers missing */
    SIM_FAULT_BLANKHEADERS,
    SIM_FAULT_NUL,      /* \u0000 inside a record string */
    SIM_FAULT_UTF8,     /* 4-byte UTF-8 inside a record string */
    SIM_FAULT_LONGSTR,  /* a very long string inside a record */
    SIM_FAULT_DEEP,     /* a value nested param (default 10000) arrays deep in a record */
    SIM_FAULT_HUGE,     /* a string of param MiB (default 100) inside a record */
    SIM_FAULT_BLANK429, /* 429, empty body, x-keap headers and Retry-After present but blank */
    SIM_FAULT_KIND_MAX,
};

struct sim_fault {
    enum sim_fault_kind kind;
    double rate;       /* probability per matching request, 0..1 */
    char endpoint[96]; /* path prefix under /crm/rest ("" = any) */
    int64_t param;     /* kind-specific: ms for latency/drip, status for 5xx */
};

struct sim_token {
    char access[48];
    char refresh[48];
    int64_t access_expiry_ms; /* sim clock */
    bool refresh_used;
    bool live;
};

struct sim_config {
    int port;
    const char *port_file;
    char *keys[SIM_MAX_KEYS];
    size_t nkeys;
    uint64_t seed;
    size_t size;
    struct sim_limits lim;
    int64_t latency_ms, jitter_ms;
    int64_t arrival_jitter_ms; /* requests reach the windows 0..N ms after they were sent */
    double mutate_rate;        /* mutations per second by a background thread; 0: none */
    int64_t token_ttl_s;       /* v2 page tokens */
    int64_t access_ttl_s;      /* OAuth2 access tokens */
    int64_t revoke_delay_ms;   /* default delay of /__admin/revoke */
    int retry_after;           /* -1 off, 0 "0", 1 on (seconds until a slot frees) */
    bool count_page;       /* v1 "count" is the page's length (--v1-count page), not the total */
    const char *client_id; /* OAuth2 client */
    const char *client_secret;
    char *tls_cert; /* PEM text of --tls-cert (HTTPS when set, with tls_key) */
    char *tls_key;  /* PEM text of --tls-key */
};

struct sim_stats {
    uint64_t requests; /* every API request (not /__admin), any status */
    uint64_t accepted; /* passed auth and every window */
    uint64_t rejected_401;
    uint64_t rejected_429;
    uint64_t rej_second, rej_minute, rej_day, rej_tenant;
    uint64_t faults;
    uint64_t oauth_refreshes; /* refresh_token grants answered with a new pair */
    uint64_t refresh_reused;  /* refresh_token grants with a refresh token already spent */
    uint64_t max_in_1s, max_in_60s;
    /* CLOCK_MONOTONIC ms at which the first and the latest API request with a known key
     * reached the windows (any verdict), and the first and latest accepted one; 0: none yet */
    int64_t first_request_ms, last_request_ms;
    int64_t first_accepted_ms, last_accepted_ms;
    int64_t hist_start_s;            /* sim-clock second of hist[0] */
    uint32_t hist[SIM_HIST_SECONDS]; /* accepted per second, the last SIM_HIST_SECONDS */
};

/* The whole simulator. One instance, shared by every connection thread. */
struct sim {
    struct sim_config cfg;
    struct sim_data data;

    pthread_mutex_t mu;                    /* guards everything below */
    struct sim_key keys[SIM_MAX_KEYS + 1]; /* the last slot is the OAuth principal */
    size_t nkeys;
    struct sim_win tenant_win;
    int64_t day_start_ms; /* sim-clock start of the UTC day day_used belongs to */
    int64_t day_used;
    int64_t clock_offset_ms;
    struct sim_stats st;
    struct sim_fault faults[SIM_MAX_FAULTS];
    size_t nfaults;
    uint64_t fault_rng;
    struct sim_token tokens[SIM_MAX_TOKENS];
    size_t ntokens_next;
    uint64_t token_rng;
    char auth_codes[8][48];  /* issued by /__admin/authorize, single use */
    struct sim_lists *lists; /* every list but contacts (lists.c) */
};

/* clock.c-like helpers (limits.c) */
int64_t sim_mono_ms(void);
int64_t sim_wall_ms(struct sim *s); /* takes s->mu itself */
int64_t sim_wall_ms_locked(const struct sim *s);

/* limits.c */
int sim_limits_init(struct sim *s);
void sim_limits_free(struct sim *s);
/*
 * Counts one API request from key (NULL: unauthenticated) and decides it. Accepted requests
 * are added to the key's and the tenant's windows and to the day. Fills view (always).
 */
enum sim_verdict sim_limits_admit(struct sim *s, struct sim_key *key, struct sim_quota_view *view);
/* Milliseconds until the window that refused a request frees a slot (for Retry-After). */
int64_t sim_limits_retry_ms(struct sim *s, struct sim_key *key, enum sim_verdict v);
void sim_limits_reset(struct sim *s);
/* Parses "10/s,240/min,30000/day" (0 = none) into lim; returns 0 or BASE_EINVAL. */
int sim_limits_parse(const char *spec, struct sim_limits *lim);

/* data.c */
int sim_data_init(struct sim_data *d, uint64_t seed, size_t size);
void sim_data_free(struct sim_data *d);
/* Applies mutations at sim-clock now_ms (takes the write lock). */
int sim_data_mutate(struct sim_data *d, int64_t now_ms, size_t creates, size_t updates,
                    size_t deletes);
/* What the per-contact lists need of one contact. */
struct sim_contact_info {
    int64_t created_ms, updated_ms;
    int ntags;
    int64_t tags[4];
    char email[96];
};
/* Looks up contact id under the read lock; BASE_ENOTFOUND if there is none. */
int sim_data_contact_info(struct sim_data *d, int64_t id, struct sim_contact_info *info);
/* Appends contact id's v1 JSON (custom fields if cf) to out; BASE_ENOTFOUND if none. */
int sim_data_contact_json(struct sim_data *d, int64_t id, bool cf, struct base_buf *out);

/* Formats Keap's v1 timestamp "2024-11-07T20:35:13.000+0000" (seconds, ms shown as .000). */
int sim_format_v1_time(int64_t ms, char *buf, size_t n);
/* Appends s as a JSON string literal (quotes included). */
int sim_json_str(struct base_buf *b, const char *s);

/* gen.c: the spec-driven generator (see its file header). */
enum sim_gen_ov {
    SIM_OV_NONE = 0,
    SIM_OV_ID,        /* the record's id */
    SIM_OV_CREATED,   /* its created time */
    SIM_OV_UPDATED,   /* its last-updated time (what the incremental filters read) */
    SIM_OV_EXTRA,     /* its third time (due, sent-opened, next bill, ...) */
    SIM_OV_EXTRA_END, /* an hour after EXTRA */
    SIM_OV_CONTACT,   /* the contact it belongs to */
    SIM_OV_USER,      /* a user's id */
    SIM_OV_PRODUCT,   /* a product's id */
    SIM_OV_ORDER,     /* the order it pays */
    SIM_OV_NAME,
    SIM_OV_EMAIL,
    SIM_OV_GIVEN,
    SIM_OV_FAMILY,
    SIM_OV_STATUS,
    SIM_OV_NULL,
};

struct sim_gen_override {
    const char *path; /* "id", "contact.id", ... (NULL ends a table) */
    enum sim_gen_ov ov;
};

/* One record as the generator sees it. Ids, links and times <= 0 render as null. */
struct sim_gen_rec {
    uint64_t rng; /* the stream every other value comes from */
    bool v2;      /* v2 forms: string ids by schema, "...Z" times */
    bool cf;      /* include custom_fields where the list makes them optional */
    int64_t id, created, updated, extra;
    int64_t contact, user, product, order;
    const char *name, *email, *given, *family, *status;
    const int64_t *cf_ids; /* the object's custom field ids (its model), or NULL */
    size_t ncf_ids;
};

struct sim_gen;
struct sim_gen_node;
/* Parses the embedded schemas.json. */
int sim_gen_open(struct sim_gen **out);
void sim_gen_close(struct sim_gen *g);
/* Compiles schemas.json entry name ("v1/orders") with its overrides; *key is the list's array
 * property (owned by g). BASE_ENOTFOUND when there is no such entry. */
int sim_gen_compile(const struct sim_gen *g, const char *name, const struct sim_gen_override *ovs,
                    struct sim_gen_node **out, const char **key);
void sim_gen_free_node(struct sim_gen_node *n);
/* Appends one record's JSON; advances r->rng. */
int sim_gen_render(const struct sim_gen_node *n, struct sim_gen_rec *r, struct base_buf *out);

/* lists.c (and lists_*.c, lists_int.h): every list but contacts (README.md has the table). */
int sim_lists_init(struct sim *s);
void sim_lists_free(struct sim *s);
/* Answers GET path (below /crm/rest) if it is a list lists.c serves: 0 with *status and body
 * set (errors included); BASE_ENOTFOUND if the path is not one of them; < 0 on failure. */
int sim_lists_handle(struct sim *s, struct MHD_Connection *c, const char *path, int *status,
                     struct base_buf *body);
/* Answers GET /v1/<object>/model (contacts, companies, opportunities, orders, notes, tasks,
 * appointments, subscriptions): the custom fields whose ids the object's records carry.
 * BASE_ENOTFOUND for any other path. */
int sim_lists_model(struct sim *s, const char *path, int *status, struct base_buf *body);
/* /__admin/truth for a resource other than contacts: one line per record as the default list
 * serves it (v1 with custom fields), or {"id","created_ms","updated_ms","extra_ms"} with meta.
 * BASE_ENOTFOUND for an unknown resource or version. */
int sim_lists_truth(struct sim *s, const char *resource, bool v2, bool meta, struct base_buf *body);
/* /__admin/delete: deletes count random live records of resource (a list of generated records,
 * not contacts, emails or tags), as of the sim clock's now, and, with restore_id > 0, brings
 * that deleted record back first. Appends {"resource","deleted"|"restored":[ids]} to body.
 * BASE_ENOTFOUND for a resource it cannot delete from. */
int sim_lists_delete(struct sim *s, const char *resource, size_t count, int64_t restore_id,
                     struct base_buf *body);
/* /__admin/lists: [{resource, version, path, key, page_cap, filters: {name: {key, until}}}],
 * every list lists.c serves, for tests that must walk them all. */
int sim_lists_index(struct sim *s, struct base_buf *body);

/* resources.c: tags and sent emails, the two lists whose records have a fixed shape. */
int sim_tag_json(struct base_buf *b, int64_t id, bool v2, int64_t created_ms, int64_t updated_ms);
/* Sent email i of a contact (its id, first address and created time), v1 shape. */
int sim_email_v1_json(struct base_buf *b, int64_t contact_id, const char *to, int64_t created_ms,
                      size_t i);
/* How many sent emails a contact has, and email i's sent time. */
size_t sim_email_count(int64_t contact_id, const char *to);
int64_t sim_email_sent_ms(int64_t created_ms, size_t i);
/* The company name contacts use for company index c (0..6), or NULL. */
const char *sim_company_name(size_t c);

/* resources.c: /v1/contacts/{id}[/tags|/emails]. path is below /crm/rest; return 0 with
 * *status and body set (errors included), or a negative code when the body could not be built. */
int sim_res_contact_sub(struct sim *s, struct MHD_Connection *c, const char *path, int *status,
                        struct base_buf *body);
/* Formats v1 next/previous links (as unreliable as Keap's, see routes.c). */
int sim_v1_links(struct base_buf *b, struct MHD_Connection *c, const char *path, size_t served,
                 size_t offset, size_t limit);

/* v2 page tokens (routes.c): opaque hex of (offset, issue time, query hash). Read answers
 * BASE_EINVAL for a token not minted for this query and BASE_ERANGE for one older than
 * --token-ttl seconds (sim clock). */
uint64_t sim_hash_str(uint64_t h, const char *s);
void sim_page_token_make(struct sim *s, uint64_t qhash, uint64_t offset, char *out, size_t n);
int sim_page_token_read(struct sim *s, const char *tok, uint64_t qhash, uint64_t *offset);

/* faults.c */
int sim_fault_parse(const char *spec, struct sim_fault *f);
int sim_faults_add(struct sim *s, const struct sim_fault *f);
/* Picks the fault (if any) that fires for a request to path; kind SIM_FAULT_KIND_MAX: none. */
int sim_faults_pick(struct sim *s, const char *path, struct sim_fault *out);
const char *sim_fault_name(enum sim_fault_kind k);

/* routes.c: the MHD access handler and the request-completed hook. */
int sim_http_start(struct sim *s, int port, int *bound_port, void **daemon);
void sim_http_stop(void *daemon);

/* admin.c: requests under /__admin; fills *status and body (a malloc'd string). */
int sim_admin_handle(struct sim *s, const char *method, const char *path, struct MHD_Connection *c,
                     const char *upload, size_t upload_len, int *status, struct base_buf *body);

/* oauth (admin.c): POST /token */
int sim_token_handle(struct sim *s, struct MHD_Connection *c, const char *upload, size_t upload_len,
                     int *status, struct base_buf *body);
/* Finds the principal for a bearer token; NULL if unknown or expired (expired set). */
struct sim_key *sim_token_lookup(struct sim *s, const char *token, bool *expired);

/* Random helpers shared by files (splitmix64). */
static inline uint64_t sim_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
static inline double sim_rng_unit(uint64_t *state)
{
    return (double)(sim_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
