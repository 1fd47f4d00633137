/*
 * auth_cmd.c: `keapsync auth` (the first token pair of an OAuth2 client, from an
 * authorization code or an existing refresh token) and the credential of the commands that
 * call Keap (auth_cmd.h).
 *
 * Words used here (keap.h, "OAuth2"): client, pair, generation.
 */
#include "auth_cmd.h"
#include "cli_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_CONFIG 2
#define EXIT_AUTH   77
/* A refresh token file larger than this holds no refresh token. */
#define REFRESH_FILE_MAX 4096

static const char *env_set(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The client and the token key from the environment into a fresh *out; NULL when no client. */
static int oauth_from_env(struct cli_oauth **out, struct base_err *err)
{
    struct cli_oauth *o = calloc(1, sizeof(*o));
    const char *keyfile = env_set("KEAPSYNC_TOKEN_KEY_FILE");
    bool configured = false;
    int rc;

    *out = NULL;
    if (o == NULL)
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    rc = keap_oauth_client_from_env(&o->client, &configured, err);
    if (rc == 0 && configured && keyfile != NULL) {
        rc = store_token_key_load(keyfile, &o->key, err);
        o->have_key = rc == 0;
    }
    if (rc < 0 || !configured) {
        cli_oauth_free(o);
        return rc;
    }
    o->so.client = &o->client;
    o->so.key = o->have_key ? &o->key : NULL;
    o->so.app_per_day = 150000;
    *out = o;
    return BASE_OK;
}

void cli_oauth_free(struct cli_oauth *o)
{
    if (o == NULL)
        return;
    keap_oauth_client_clear(&o->client);
    base_wipe(&o->key, sizeof(o->key));
    free(o);
}

int cli_credential_env(struct keap_credential *cred, struct cli_oauth **out, struct base_err *err)
{
    int rc;

    *out = NULL;
    if (getenv("KEAP_API_KEY") != NULL || getenv("KEAP_API_KEY_FILE") != NULL)
        return keap_credential_from_env(cred, err);
    rc = oauth_from_env(out, err);
    if (rc < 0 || *out != NULL)
        return rc;
    rc = keap_credential_from_env(cred, err); /* says what is missing */
    if (rc == BASE_ECONFIG)
        base_err_hint(err, "set KEAP_API_KEY_FILE to a file holding a Personal Access Token or "
                           "Service Account Key, or KEAP_CLIENT_ID and KEAP_CLIENT_SECRET_FILE "
                           "for OAuth2 (then run \"keapsync auth\")");
    return rc;
}

int cli_credential_db(struct store *s, struct keap_credential *cred, struct cli_oauth *o,
                      struct base_err *err)
{
    struct sched_token t = {0};
    int rc;

    if (o == NULL)
        return BASE_OK;
    rc = sched_oauth_token(s, &o->client, o->so.key, -1, false,
                           base_clock_wall_ms(base_clock_system()), &t, err);
    if (rc < 0)
        return rc;
    if (t.refreshed)
        base_log_info("access token of client \"%s\" refreshed", o->client.id);
    cred->api_key = NULL;
    cred->access_token = t.access_token;
    t.access_token = NULL;
    o->so.generation = t.generation;
    o->so.obtained_ms = t.obtained_ms;
    o->so.expires_ms = t.expires_ms;
    sched_token_clear(&t);
    return BASE_OK;
}

int cli_credential(struct store *s, struct keap_credential *cred, struct base_err *err)
{
    struct cli_oauth *o = NULL;
    struct store *own = NULL;
    int rc = cli_credential_env(cred, &o, err);

    if (rc < 0 || o == NULL)
        return rc;
    if (s == NULL) {
        const char *url = getenv("DATABASE_URL");

        rc = store_connect(&own, url, err);
        s = own;
    }
    if (rc == 0)
        rc = cli_credential_db(s, cred, o, err);
    store_close(own);
    cli_oauth_free(o);
    return rc;
}

/* Parses one of the limit variables: its minute and day (0: none) into *min and *day. */
static int limits_env(const char *name, const char *dflt, int64_t *min, int64_t *day,
                      struct base_err *err)
{
    const char *spec = env_set(name);
    struct pace_config c = {0};
    int rc;

    rc = pace_config_parse(spec ? spec : dflt, &c, err);
    if (rc < 0) {
        base_err_hint(err, "%s looks like %s", name, dflt);
        return rc;
    }
    *min = c.per_min;
    *day = c.per_day;
    return BASE_OK;
}

int cli_app_limits(struct sched_options *opt, struct cli_oauth *o, struct base_err *err)
{
    int64_t min = 0, day = 0;
    int rc;

    rc = limits_env("KEAPSYNC_TENANT_CEILING", "10000/min,250000/day", &min, &day, err);
    if (rc < 0)
        return rc;
    opt->ceiling_per_day = day;
    if (min > 0 && (opt->limits.per_min <= 0 || min < opt->limits.per_min))
        opt->limits.per_min = min;
    if (o == NULL)
        return BASE_OK;
    rc = limits_env("KEAPSYNC_APP_LIMITS", "1500/min,150000/day", &min, &day, err);
    if (rc < 0)
        return rc;
    o->so.app_per_day = day;
    if (min > 0 && (opt->limits.per_min <= 0 || min < opt->limits.per_min))
        opt->limits.per_min = min;
    return BASE_OK;
}

/* ---------------------------------------------------------------- keapsync auth */

static int auth_fail(int code, const struct base_err *err)
{
    if (err->hint[0] != '\0')
        fprintf(stderr, "keapsync: error: %s (hint: %s)\n", err->msg, err->hint);
    else
        fprintf(stderr, "keapsync: error: %s\n", err->msg);
    return code;
}

static const char auth_usage_text[] =
    "Usage: keapsync auth --code CODE --redirect-uri URI\n"
    "       keapsync auth --refresh-token-file FILE\n"
    "\n"
    "Stores an OAuth2 client's first token pair in DATABASE_URL (keapsync.oauth_tokens,\n"
    "encrypted when KEAPSYNC_TOKEN_KEY_FILE is set), for KEAP_CLIENT_ID with its secret in\n"
    "KEAP_CLIENT_SECRET_FILE (or KEAP_CLIENT_SECRET). Every later run refreshes the pair\n"
    "itself.\n"
    "\n"
    "  --code CODE             an authorization code from Keap's authorize page (short-lived,\n"
    "                          single-use), exchanged at KEAP_TOKEN_URL; \"-\" reads it from\n"
    "                          stdin, so that it is never in the process list\n"
    "  --redirect-uri URI      the redirect URI the code was issued for\n"
    "  --refresh-token-file FILE\n"
    "                          a file (mode 0600) holding an existing refresh token\n"
    "\n"
    "Exit codes: 0 stored; 2 bad usage or configuration; 77 Keap refused the code or token;\n"
    "1 other failure.\n";

/* msg, with arg (or "") after it. */
static int auth_usage(const char *msg, const char *arg)
{
    struct base_err err;

    base_err_set(&err, BASE_ECONFIG, "%s%s%s%s", msg, arg[0] ? " \"" : "", arg, arg[0] ? "\"" : "");
    base_err_hint(&err, "keapsync auth --code CODE --redirect-uri URI, or keapsync auth "
                        "--refresh-token-file FILE (see keapsync auth --help)");
    return auth_fail(EXIT_CONFIG, &err);
}

/* Reads the refresh token of a private file into a fresh *out. */
/* "--code -": the code is the first line of stdin (so it is never in argv, where ps shows it). */
static int code_from_stdin(char **out, struct base_err *err)
{
    char buf[REFRESH_FILE_MAX];
    size_t a = 0, b;

    if (fgets(buf, sizeof(buf), stdin) == NULL)
        return base_err_set(err, BASE_ECONFIG, "--code -: no authorization code on stdin");
    b = strlen(buf);
    while (a < b && (buf[a] == ' ' || buf[a] == '\t'))
        a++;
    while (b > a &&
           (buf[b - 1] == ' ' || buf[b - 1] == '\n' || buf[b - 1] == '\r' || buf[b - 1] == '\t'))
        b--;
    for (size_t i = a; i < b; i++)
        if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f)
            b = a;
    if (a == b) {
        base_wipe(buf, sizeof(buf));
        return base_err_set(err, BASE_ECONFIG,
                            "--code -: the first line of stdin is not an authorization code");
    }
    *out = malloc(b - a + 1);
    if (*out != NULL) {
        memcpy(*out, buf + a, b - a);
        (*out)[b - a] = '\0';
    }
    base_wipe(buf, sizeof(buf));
    return *out ? BASE_OK : base_err_set(err, BASE_ENOMEM, "out of memory");
}

static int refresh_from_file(const char *path, char **out, struct base_err *err)
{
    unsigned char buf[REFRESH_FILE_MAX];
    size_t len = 0, a = 0, b;
    int rc = base_read_private_file(path, "refresh token file", sizeof(buf), buf, &len, err);

    if (rc < 0)
        return rc;
    b = len;
    while (a < b && (buf[a] == ' ' || buf[a] == '\n' || buf[a] == '\r' || buf[a] == '\t'))
        a++;
    while (b > a &&
           (buf[b - 1] == ' ' || buf[b - 1] == '\n' || buf[b - 1] == '\r' || buf[b - 1] == '\t'))
        b--;
    for (size_t i = a; i < b; i++)
        if (buf[i] <= 0x20 || buf[i] >= 0x7f)
            b = a; /* not a token: reported as empty */
    if (a == b) {
        base_wipe(buf, sizeof(buf));
        return base_err_set(err, BASE_ECONFIG, "refresh token file \"%s\" holds no refresh token",
                            path);
    }
    *out = malloc(b - a + 1);
    if (*out != NULL) {
        memcpy(*out, buf + a, b - a);
        (*out)[b - a] = '\0';
    }
    base_wipe(buf, sizeof(buf));
    return *out ? BASE_OK : base_err_set(err, BASE_ENOMEM, "out of memory");
}

/* Connects and checks that the schema has keapsync.oauth_tokens (migrate has run). */
static int auth_connect(struct store **out, struct base_err *err)
{
    struct store *s;
    int version = 0, rc = store_connect(&s, getenv("DATABASE_URL"), err);

    if (rc < 0)
        return rc;
    rc = store_schema_version(s, &version, err);
    if (rc == 0 && version < store_latest_version()) {
        rc = base_err_set(err, BASE_ECONFIG,
                          "the database schema is at version %d, this keapsync needs version %d",
                          version, store_latest_version());
        base_err_hint(err, "run \"keapsync migrate\" first");
    }
    if (rc < 0) {
        store_close(s);
        return rc;
    }
    *out = s;
    return BASE_OK;
}

int cli_cmd_auth(int argc, char **argv)
{
    const char *code = NULL, *redirect = NULL, *rfile = NULL;
    struct keap_oauth_pair pair = {0};
    struct store_oauth_row row = {0};
    struct cli_oauth *o = NULL;
    struct store *s = NULL;
    struct base_err err;
    char *refresh = NULL, *code_copy = NULL;
    int64_t now;
    int rc, exit_code = 0;

    base_err_clear(&err);
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i]))
            return fputs(auth_usage_text, stdout), 0;
        else if (strcmp(argv[i], "--code") == 0 && i + 1 < argc)
            code = argv[++i];
        else if (strcmp(argv[i], "--redirect-uri") == 0 && i + 1 < argc)
            redirect = argv[++i];
        else if (strcmp(argv[i], "--refresh-token-file") == 0 && i + 1 < argc)
            rfile = argv[++i];
        else
            return auth_usage("unknown option or missing value for auth:", argv[i]);
    }
    if ((code != NULL) == (rfile != NULL))
        return auth_usage("auth needs either --code or --refresh-token-file", "");
    if (code != NULL && redirect == NULL)
        return auth_usage("--code needs --redirect-uri, the redirect URI the code was issued for",
                          "");
    if (rfile != NULL && redirect != NULL)
        return auth_usage("--redirect-uri goes with --code only", "");
    rc = oauth_from_env(&o, &err);
    if (rc < 0)
        return auth_fail(EXIT_CONFIG, &err);
    if (o == NULL) {
        base_err_set(&err, BASE_ECONFIG, "no OAuth2 client configured: KEAP_CLIENT_ID is not set");
        base_err_hint(&err, "set KEAP_CLIENT_ID and KEAP_CLIENT_SECRET_FILE (or "
                            "KEAP_CLIENT_SECRET) to your Keap developer app's client");
        return auth_fail(EXIT_CONFIG, &err);
    }
    if (code != NULL && strcmp(code, "-") == 0) {
        if ((rc = code_from_stdin(&code_copy, &err)) < 0) {
            exit_code = auth_fail(EXIT_CONFIG, &err);
            goto out;
        }
    } else if (code != NULL) {
        /* Given in argv: copied, and the argument blanked, so that ps shows it no longer (it
         * was visible until now: "--code -" reads it from stdin instead). */
        code_copy = strdup(code);
        if (code_copy == NULL) {
            base_err_set(&err, BASE_ENOMEM, "out of memory");
            exit_code = auth_fail(EXIT_FAILURE, &err);
            goto out;
        }
        memset((char *)code, 'x', strlen(code));
    }
    code = code_copy;
    if (rfile != NULL && (rc = refresh_from_file(rfile, &refresh, &err)) < 0) {
        exit_code = auth_fail(EXIT_CONFIG, &err);
        goto out;
    }
    if ((rc = auth_connect(&s, &err)) < 0) {
        exit_code = auth_fail(EXIT_CONFIG, &err);
        goto out;
    }
    /* No lock needed: the upsert waits for a run refreshing the pair, then replaces it. */
    if (code != NULL)
        rc = keap_oauth_exchange_code(&o->client, code, redirect, &pair, &err);
    else
        rc = keap_oauth_refresh(&o->client, refresh, &pair, &err);
    if (rc < 0) {
        if (rc == BASE_EAUTH && err.hint[0] == '\0')
            base_err_hint(&err, "%s",
                          code ? "authorization codes are single-use and short-lived: get a "
                                 "fresh one from Keap's authorize page and run auth at once"
                               : "the refresh token is dead (used or revoked): authorize with "
                                 "keapsync auth --code CODE --redirect-uri URI");
        exit_code = auth_fail(rc == BASE_EAUTH ? EXIT_AUTH : EXIT_FAILURE, &err);
        goto out;
    }
    now = base_clock_wall_ms(base_clock_system());
    row.access_token = pair.access_token;
    row.refresh_token = pair.refresh_token;
    pair.access_token = pair.refresh_token = NULL;
    snprintf(row.scope, sizeof(row.scope), "%s", pair.scope);
    row.obtained_ms = now;
    row.expires_ms = now + pair.expires_in_s * 1000;
    rc = store_oauth_save(s, o->client.id, o->so.key, &row, &err);
    if (rc < 0) {
        exit_code = auth_fail(EXIT_FAILURE, &err);
        goto out;
    }
    printf("auth: tokens of client \"%s\" stored %s in keapsync.oauth_tokens (generation %" PRId64
           "), access token valid for %" PRId64 " s, scope \"%s\"\n",
           o->client.id, o->have_key ? "encrypted" : "in clear", row.generation, pair.expires_in_s,
           row.scope);
out:
    store_oauth_row_clear(&row);
    keap_oauth_pair_clear(&pair);
    base_secret_free(refresh);
    base_secret_free(code_copy);
    store_close(s);
    cli_oauth_free(o);
    return exit_code;
}
