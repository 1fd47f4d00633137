/*
 * keap: the Keap dialect. Credentials and auth headers, list URLs for v1 (limit/offset,
 * since/until) and v2 (page_size/page_token/filter), classifying responses, reading the
 * x-keap-* headers into a pace observation, and parsing a list page.
 *
 * Words used here:
 *   credential  a Personal Access Token or Service Account Key (X-Keap-API-Key), or an
 *               OAuth2 access token (Authorization: Bearer). Secret: never logged.
 *   page        one list response: its records array, and for v2 its next_page_token.
 *   outcome     what the engine should do with a response (keap_classify).
 */
#ifndef KEAPSYNC_KEAP_H
#define KEAPSYNC_KEAP_H

#include "base.h"
#include "http.h"
#include "pace.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#define KEAP_DEFAULT_BASE_URL  "https://api.infusionsoft.com/crm/rest"
#define KEAP_DEFAULT_TOKEN_URL "https://api.infusionsoft.com/token"

enum keap_api {
    KEAP_API_V1 = 1,
    KEAP_API_V2 = 2,
};

struct keap_credential {
    char *api_key;      /* PAT or SAK, or NULL */
    char *access_token; /* OAuth2 bearer, or NULL */
};

/*
 * Reads KEAP_API_KEY or KEAP_API_KEY_FILE (the file must not be group- or world-readable;
 * surrounding whitespace is trimmed). Errors are BASE_ECONFIG with a one-line message and
 * hint that never contain the key itself.
 */
int keap_credential_from_env(struct keap_credential *cred, struct base_err *err);
/* Wipes and frees the secrets. Accepts NULL. */
void keap_credential_clear(struct keap_credential *cred);

/*
 * Writes an identifier of the credential into buf: KEAP_CREDENTIAL_ID_LEN hex digits, 32 bits
 * of FNV-1a of the secret (the API key, else the access token). One secret always gives the
 * same identifier, so processes sharing a key can find each other; 32 bits tell a tenant's
 * keys apart and say next to nothing of the key. BASE_EINVAL, with buf untouched, when
 * there is no secret or n < KEAP_CREDENTIAL_ID_LEN + 1.
 */
#define KEAP_CREDENTIAL_ID_LEN 8
int keap_credential_id(const struct keap_credential *cred, char *buf, size_t n);

/*
 * Header lines for a request: the auth line plus "Accept: application/json". Returned as a
 * NULL-terminated array owned by the caller (keap_headers_free wipes and frees it).
 */
int keap_auth_headers(const struct keap_credential *cred, char ***out);
void keap_headers_free(char **headers);

/* A fixed query parameter (a job's "query"): sent after keapsync's own, both parts
 * URL-encoded. */
struct keap_param {
    char *name;
    char *value;
};

/* A v1 list request (limit/offset). Strings are borrowed; NULL or -1 means "leave out". */
struct keap_v1_query {
    int limit;
    int64_t offset;
    const char *order;           /* "id", ... */
    const char *order_direction; /* "ASCENDING" / "DESCENDING" */
    const char *since_param;     /* usually "since"; "since_sent_date" for emails */
    int64_t since_ms;
    const char *until_param;
    int64_t until_ms;
    const char *optional_properties; /* e.g. "custom_fields" */
    const struct keap_param *extra;  /* nextra fixed parameters, appended last */
    size_t nextra;
};

/* A v2 list request (page tokens). */
struct keap_v2_query {
    int page_size;
    const char *page_token;         /* NULL on the first page */
    const char *order_by;           /* e.g. "update_time asc" */
    const char *filter_since_field; /* e.g. "start_update_time" */
    int64_t since_ms;
    const char *filter_until_field; /* e.g. "end_update_time" */
    int64_t until_ms;
    const char *fields;
    const struct keap_param *extra; /* nextra fixed parameters, appended last */
    size_t nextra;
};

/* Appends base_url + endpoint + the query string to out (values URL-encoded). */
int keap_build_v1_url(struct base_buf *out, const char *base_url, const char *endpoint,
                      const struct keap_v1_query *q);
int keap_build_v2_url(struct base_buf *out, const char *base_url, const char *endpoint,
                      const struct keap_v2_query *q);

/*
 * Fetches GET <base_url>/v1/<object>/model (an object's custom fields) with headers (from
 * keap_auth_headers; never logged), blocking, on a loop of its own: meant for once per run,
 * before the run's loop starts. On success *out owns the parsed body. Errors, with err set
 * (never naming the credential): BASE_EAUTH (401/403), BASE_EIO (Keap unreachable, 5xx, 429),
 * BASE_EPROTO (not a JSON object), BASE_ENOTFOUND (404: no such model), BASE_EINVAL.
 */
int keap_fetch_model(const char *base_url, const char *object, const char *const *headers,
                     cJSON **out, struct base_err *err);

/* What a probe learnt (keap_probe_list). */
struct keap_probe_result {
    int n;                       /* records on the page */
    int64_t count;               /* the body's "count" (page length or total: uncertain), -1 */
    struct pace_observation obs; /* x-keap-* headers; tenant_id is NULL (see tenant) */
    char tenant[128];            /* x-keap-tenant-id, or "" */
};

/*
 * Fetches url (a list request, e.g. from keap_build_v1_url) with headers (never logged),
 * blocking, on a loop of its own, and reports how many records the page holds under
 * array_key. For the quota planner's probes: one request, which the caller has counted in
 * the ledger. Errors, with err set (naming the path, never the credential): BASE_EAUTH
 * (401/403), BASE_EQUOTA (a daily-quota 429), BASE_ENOTFOUND (404: no such list), BASE_EIO
 * (unreachable, 5xx, other 429s, other 4xx), BASE_EPROTO (no array under array_key),
 * BASE_EINVAL.
 */
int keap_probe_list(const char *url, const char *const *headers, const char *array_key,
                    struct keap_probe_result *out, struct base_err *err);

enum keap_outcome {
    KEAP_OUTCOME_OK = 0,       /* 2xx with a JSON body */
    KEAP_OUTCOME_RETRY,        /* transport error, 5xx, HTML/non-JSON error page: retry later */
    KEAP_OUTCOME_RATE_LIMITED, /* 429: see kind */
    KEAP_OUTCOME_AUTH,         /* 401/403: credentials refused (the run stops) */
    KEAP_OUTCOME_BAD_TOKEN,    /* 400 on a v2 page_token (expired): restart the window */
    KEAP_OUTCOME_FATAL, /* any other 4xx (a bug or bad job definition), or a body over the cap */
};

struct keap_verdict {
    enum keap_outcome outcome;
    enum pace_limit_kind limit; /* for RATE_LIMITED */
    int64_t retry_after_ms;     /* from Retry-After, or -1 */
    char reason[256];           /* short, safe to log: "HTTP 429: Quota Exceeded" */
};

/* Classifies a finished call. now_wall is for Retry-After HTTP dates. */
void keap_classify(const struct http_response *resp, int64_t now_wall, struct keap_verdict *out);
/*
 * The same, knowing which API the request went to (0: unknown, as keap_classify). A 400 is
 * BAD_TOKEN only when its body mentions a page token, or, for KEAP_API_V2, a token that is not
 * an access token; never for KEAP_API_V1. A 400 "invalid_grant" (the OAuth token endpoint
 * refusing a refresh token) is AUTH. The caller should treat BAD_TOKEN on a request that
 * carried no page_token as FATAL, or restarting the window would loop.
 */
void keap_classify_api(const struct http_response *resp, enum keap_api api, int64_t now_wall,
                       struct keap_verdict *out);

/* Reads the x-keap-* headers. Blank or malformed values read as missing (-1). */
void keap_read_headers(const struct http_response *resp, struct pace_observation *obs);

/* Where one record's JSON text lies in the (NUL-rule-applied) body. */
struct keap_span {
    size_t off;
    size_t len;
};

/* One parsed list page. */
struct keap_page {
    cJSON *root;    /* owns everything */
    cJSON *records; /* borrowed: the array under the array key */
    int nrecords;
    char *next_page_token;   /* v2: NULL or "" when done (owned) */
    int64_t nul_replaced;    /* \u0000 escapes replaced before parsing (see keap_page_parse) */
    struct keap_span *spans; /* nrecords spans into the body, so a record can be stored exactly
                              * as received; NULL if the body could not be scanned (then the
                              * parsed record is printed instead) */
};

/*
 * Parses a list body. The body must outlive the page when spans are used. NUL characters (\u0000
 * escapes) cannot be stored by Postgres text or jsonb; they are replaced by U+FFFD (the Unicode
 * replacement character) before parsing, and counted. body is modified in place; len is its length.
 * Errors: BASE_EPROTO with err naming what is wrong (not JSON, no array under array_key).
 */
int keap_page_parse(char *body, size_t len, const char *array_key, struct keap_page *out,
                    struct base_err *err);

/*
 * Which members of each record a pruned parse builds (keap_page_parse_keep): the names in
 * full are parsed into cJSON as usual; those in raw become one cJSON_Raw node holding the
 * member's JSON text as received (JSON null stays a cJSON null); every other member of a
 * record is checked but not built. A name in both lists is full. The names must outlive the
 * page (record members point at them as constant keys).
 */
struct keap_keep {
    const char *const *full;
    size_t nfull;
    const char *const *raw;
    size_t nraw;
};

/*
 * keap_page_parse, but each record object holds only the members keep names (keep NULL: all
 * of them, as keap_page_parse). The whole body is still checked as strict JSON (RFC 8259,
 * nesting as cJSON's); a body that fails the check, or that the pruned build cannot take
 * (a key with escapes), is parsed whole by cJSON instead, so what is accepted and every
 * error message are keap_page_parse's.
 */
int keap_page_parse_keep(char *body, size_t len, const char *array_key,
                         const struct keap_keep *keep, struct keap_page *out, struct base_err *err);
void keap_page_free(struct keap_page *page); /* accepts a zeroed page */

/* ---- OAuth2 (oauth.c) ----------------------------------------------------------------- */

/* The integration's OAuth2 client. id is not secret; secret is. */
struct keap_oauth_client {
    char *id;        /* KEAP_CLIENT_ID */
    char *secret;    /* KEAP_CLIENT_SECRET, or the content of KEAP_CLIENT_SECRET_FILE */
    char *token_url; /* KEAP_TOKEN_URL, default KEAP_DEFAULT_TOKEN_URL */
};

/*
 * Reads the client from the environment. *configured is false (and c untouched) when
 * KEAP_CLIENT_ID is not set and no secret is either. KEAP_CLIENT_SECRET_FILE must not be
 * group- or world-readable. Errors are BASE_ECONFIG with a message that never contains the
 * secret.
 */
int keap_oauth_client_from_env(struct keap_oauth_client *c, bool *configured, struct base_err *err);
void keap_oauth_client_clear(struct keap_oauth_client *c); /* wipes; accepts NULL */

/* A token pair as the token endpoint returned it. Secrets: keap_oauth_pair_clear wipes them. */
struct keap_oauth_pair {
    char *access_token;
    char *refresh_token;
    int64_t expires_in_s;
    char scope[256]; /* "full|xx123.infusionsoft.com": names the tenant, not secret */
};
void keap_oauth_pair_clear(struct keap_oauth_pair *p); /* accepts NULL */

/*
 * The token endpoint, blocking (a loop of its own, 15 s at most): exchanges an authorization
 * code (client id and secret in the form), or spends a refresh token (client in
 * "Authorization: Basic"). *out is set only on success. Errors: BASE_EAUTH when Keap answers
 * invalid_grant (the code or refresh token is dead) or refuses the client; BASE_EIO when the
 * endpoint cannot be reached or answers 5xx/429; BASE_EPROTO for any other answer.
 */
int keap_oauth_exchange_code(const struct keap_oauth_client *c, const char *code,
                             const char *redirect_uri, struct keap_oauth_pair *out,
                             struct base_err *err);
int keap_oauth_refresh(const struct keap_oauth_client *c, const char *refresh_token,
                       struct keap_oauth_pair *out, struct base_err *err);

/*
 * The refresh decision. An access token is refreshed when less than its margin is left: a
 * fifth of its lifetime, at most KEAP_OAUTH_MARGIN_MAX_MS (a 24 h token: 5 min before).
 */
#define KEAP_OAUTH_MARGIN_MAX_MS 300000
int64_t keap_oauth_margin_ms(int64_t obtained_ms, int64_t expires_ms);

/* What the stored pair looks like, read under its row lock. */
struct keap_oauth_view {
    int64_t generation; /* bumped by every save */
    int64_t obtained_ms;
    int64_t expires_ms; /* of the access token */
};

enum keap_oauth_action {
    KEAP_OAUTH_USE_STORED = 0, /* the stored access token is good: use it */
    KEAP_OAUTH_REFRESH,        /* spend the stored refresh token now, under the lock */
};

/*
 * Decides, under the row lock, what a process holding the pair of have_generation (-1: none
 * yet) does. force: its token was refused (401). A pair rotated by another process
 * (*rotated) is used as it is unless it too is within its margin: a 401 on the old token
 * never spends the new refresh token.
 */
enum keap_oauth_action keap_oauth_decide(const struct keap_oauth_view *stored,
                                         int64_t have_generation, bool force, int64_t now_ms,
                                         bool *rotated);

#endif
