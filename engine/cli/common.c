/*
 * common.c: what the commands share (cli_int.h): the exit code of an outcome, error reports,
 * the environment, loading jobs, connecting to the database, and bringing the jobs' tables
 * in line with their job files.
 */
#include "cli_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The exit code of a run's outcome (DESIGN.md): the one place that spells it. */
int cli_outcome_exit_code(enum sched_outcome outcome)
{
    switch (outcome) {
    case SCHED_OUTCOME_COMPLETE:
        return 0;
    case SCHED_OUTCOME_QUOTA:
        return CLI_EXIT_QUOTA;
    case SCHED_OUTCOME_AUTH:
        return CLI_EXIT_AUTH;
    case SCHED_OUTCOME_INTERRUPTED:
        return CLI_EXIT_INTERRUPTED;
    case SCHED_OUTCOME_FAILED:
    case SCHED_OUTCOME_NOMEM:
        return EXIT_FAILURE;
    }
    return EXIT_FAILURE; /* not reached: every outcome is listed above */
}

int cli_fail(int code, const struct base_err *err)
{
    if (err->hint[0] != '\0')
        fprintf(stderr, "keapsync: error: %s (hint: %s)\n", err->msg, err->hint);
    else
        fprintf(stderr, "keapsync: error: %s\n", err->msg);
    return code;
}

/* what: a message with one %s for arg. */
int cli_fail_usage(const char *what, const char *arg)
{
    struct base_err err;
    const char *at = strstr(what, "%s");
    int prefix = at ? (int)(at - what) : (int)strlen(what);

    base_err_set(&err, BASE_ECONFIG, "%.*s%s%s", prefix, what, at ? arg : "", at ? at + 2 : "");
    base_err_hint(&err, "see keapsync --help");
    return cli_fail(CLI_EXIT_CONFIG, &err);
}

int cli_fail_option(const char *cmd, const char *arg)
{
    struct base_err err;

    base_err_set(&err, BASE_ECONFIG, "unknown option or extra argument \"%s\" for %s", arg, cmd);
    base_err_hint(&err, "see keapsync %s --help", cmd);
    return cli_fail(CLI_EXIT_CONFIG, &err);
}

bool cli_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

const char *cli_env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : dflt;
}

/* url for a message: at most 200 bytes, with anything before an '@' of its authority (a
 * user name and password) shown as "***". */
static void url_shown(const char *url, char *buf, size_t n)
{
    const char *auth = strstr(url, "://");
    const char *at, *end;

    auth = auth ? auth + 3 : url;
    end = auth + strcspn(auth, "/?#");
    at = memchr(auth, '@', (size_t)(end - auth));
    if (at != NULL)
        snprintf(buf, n, "%.*s***%.*s", (int)(auth - url), url, 200, at);
    else
        snprintf(buf, n, "%.200s", url);
    for (char *p = buf; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?'; /* one line */
}

int cli_check_base_url(const char *url, struct base_err *err)
{
    static const char hint[] =
        "set it to the API root, e.g. " KEAP_DEFAULT_BASE_URL ", or unset it for that default";
    char shown[256], *scheme = NULL, *part = NULL;
    const char *sep;
    CURLU *h = curl_url();
    CURLUcode uc;
    int rc = BASE_ECONFIG;

    url_shown(url, shown, sizeof(shown));
    if (h == NULL)
        return base_err_set(err, BASE_ENOMEM, "could not check KEAP_BASE_URL: out of memory");
    if (strpbrk(url, " \t\r\n") != NULL) {
        base_err_set(err, rc, "KEAP_BASE_URL \"%s\" is not a valid URL: it contains white space",
                     shown);
        goto out;
    }
    /* curl forgives "http:/host" and reads "http:///x" as host "x": keapsync does not. */
    sep = strstr(url, "://");
    if (sep != NULL && sep[3] == '/') {
        base_err_set(err, rc, "KEAP_BASE_URL \"%s\" has no host", shown);
        goto out;
    }
    if (sep == NULL && strchr(url, ':') != NULL && strncmp(url, "http", 4) == 0) {
        base_err_set(err, rc,
                     "KEAP_BASE_URL \"%s\" is not a valid URL: \"://\" must follow the "
                     "scheme",
                     shown);
        goto out;
    }
    uc = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK) {
        base_err_set(err, rc, "KEAP_BASE_URL \"%s\" is not a valid URL: %s", shown,
                     uc == CURLUE_BAD_PORT_NUMBER ? "bad port number (1 to 65535)"
                                                  : curl_url_strerror(uc));
        goto out;
    }
    if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)) {
        base_err_set(err, rc, "KEAP_BASE_URL \"%s\": scheme \"%s\" is not http or https", shown,
                     scheme ? scheme : "");
        goto out;
    }
    if (curl_url_get(h, CURLUPART_HOST, &part, 0) != CURLUE_OK || part[0] == '\0') {
        base_err_set(err, rc, "KEAP_BASE_URL \"%s\" has no host", shown);
        goto out;
    }
    curl_free(part);
    part = NULL;
    if (curl_url_get(h, CURLUPART_PORT, &part, 0) == CURLUE_OK && strtol(part, NULL, 10) == 0) {
        base_err_set(err, rc,
                     "KEAP_BASE_URL \"%s\" is not a valid URL: bad port number (1 to 65535)",
                     shown);
        goto out;
    }
    curl_free(part);
    part = NULL;
    if (curl_url_get(h, CURLUPART_USER, &part, 0) == CURLUE_OK ||
        curl_url_get(h, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK) {
        base_err_set(err, rc, "KEAP_BASE_URL \"%s\" carries a user name or password", shown);
        base_err_hint(err, "remove the part before '@': keapsync authenticates with "
                           "KEAP_API_KEY or OAuth2, never with credentials in the URL");
        goto out_hinted;
    }
    if (curl_url_get(h, CURLUPART_QUERY, &part, 0) == CURLUE_OK ||
        curl_url_get(h, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK) {
        base_err_set(err, rc, "KEAP_BASE_URL \"%s\" has a query or fragment", shown);
        base_err_hint(err, "give only the API root: keapsync appends each job's endpoint "
                           "and its own query");
        goto out_hinted;
    }
    rc = 0;
out:
    if (rc < 0)
        base_err_hint(err, "%s", hint);
out_hinted:
    curl_free(part);
    curl_free(scheme);
    curl_url_cleanup(h);
    return rc;
}

int cli_base_url(const char **out, struct base_err *err)
{
    const char *url = cli_env_or("KEAP_BASE_URL", NULL);
    int rc;

    if (url == NULL) {
        *out = KEAP_DEFAULT_BASE_URL;
        return 0;
    }
    rc = cli_check_base_url(url, err);
    if (rc < 0)
        return rc;
    *out = url;
    return 0;
}

/* KEAPSYNC_CA_FILE: readable, and holding at least one PEM certificate. */
static int check_ca_file(const char *path, struct base_err *err)
{
    FILE *f = fopen(path, "r");
    char chunk[4096 + 32];
    size_t n, keep = 0;
    bool found = false;
    int rc = 0;

    if (f == NULL)
        rc = base_err_set(err, BASE_ECONFIG, "KEAPSYNC_CA_FILE \"%.200s\" cannot be read: %s", path,
                          strerror(errno));
    /* Read in chunks, keeping the tail of each: the marker may straddle two. */
    while (rc == 0 && !found && (n = fread(chunk + keep, 1, sizeof(chunk) - 1 - keep, f)) > 0) {
        n += keep;
        chunk[n] = '\0';
        found = strstr(chunk, "-----BEGIN CERTIFICATE-----") != NULL;
        keep = n < 26 ? n : 26;
        memmove(chunk, chunk + n - keep, keep);
    }
    if (rc == 0 && ferror(f))
        rc = base_err_set(err, BASE_ECONFIG, "KEAPSYNC_CA_FILE \"%.200s\" cannot be read: %s", path,
                          strerror(errno ? errno : EIO));
    else if (rc == 0 && !found)
        rc = base_err_set(err, BASE_ECONFIG,
                          "KEAPSYNC_CA_FILE \"%.200s\" holds no PEM certificate (\"-----BEGIN "
                          "CERTIFICATE-----\")",
                          path);
    if (f != NULL)
        fclose(f);
    if (rc < 0)
        base_err_hint(err, "point it at a readable PEM bundle of the CA certificates to trust, "
                           "or unset it for the system's");
    return rc;
}

/* With KEAPSYNC_TLS_INSECURE=1: what (an environment variable) names url, whose host must be
 * a loopback address. */
static int check_insecure_host(const char *what, const char *url, struct base_err *err)
{
    char host[256];

    if (http_url_is_loopback(url, host, sizeof(host)))
        return 0;
    for (char *p = host; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    base_err_set(err, BASE_ECONFIG,
                 "KEAPSYNC_TLS_INSECURE=1 turns TLS verification off only for a loopback test "
                 "host, and %s's host \"%s\" is not one (127.0.0.0/8, ::1 or localhost)",
                 what, host);
    base_err_hint(err, "unset KEAPSYNC_TLS_INSECURE; to trust a private CA, set KEAPSYNC_CA_FILE "
                       "to its PEM bundle instead");
    return BASE_ECONFIG;
}

int cli_configure_tls(struct base_err *err)
{
    const char *ca = cli_env_or("KEAPSYNC_CA_FILE", NULL);
    const char *insecure = cli_env_or("KEAPSYNC_TLS_INSECURE", "0");
    struct http_tls tls = {.ca_file = ca};
    int rc;

    if (strcmp(insecure, "1") == 0)
        tls.insecure = true;
    else if (strcmp(insecure, "0") != 0) {
        base_err_set(err, BASE_ECONFIG, "invalid KEAPSYNC_TLS_INSECURE \"%.40s\"", insecure);
        base_err_hint(err, "use 1 (no TLS verification, loopback test hosts only) or 0");
        return BASE_ECONFIG;
    }
    if (ca != NULL && (rc = check_ca_file(ca, err)) < 0)
        return rc;
    if (tls.insecure) {
        const char *base = cli_env_or("KEAP_BASE_URL", KEAP_DEFAULT_BASE_URL);
        const char *token = cli_env_or("KEAP_TOKEN_URL", NULL);

        if ((rc = check_insecure_host("KEAP_BASE_URL", base, err)) < 0)
            return rc;
        /* The token endpoint too, when OAuth2 may reach it. */
        if (token == NULL && cli_env_or("KEAP_CLIENT_ID", NULL) != NULL)
            token = KEAP_DEFAULT_TOKEN_URL;
        if (token != NULL && (rc = check_insecure_host("KEAP_TOKEN_URL", token, err)) < 0)
            return rc;
        base_log_warning("KEAPSYNC_TLS_INSECURE=1: TLS certificates of loopback hosts are not "
                         "verified");
    }
    if (http_tls_configure(&tls) < 0)
        return base_err_set(err, BASE_ENOMEM, "could not configure TLS: out of memory");
    return 0;
}

int cli_load_limits(struct pace_config *cfg, struct base_err *err)
{
    const char *spec = cli_env_or("KEAPSYNC_LIMITS", NULL);
    const char *reserve = cli_env_or("KEAPSYNC_RESERVE", NULL);
    int rc;

    pace_config_default(cfg);
    if (spec != NULL && (rc = pace_config_parse(spec, cfg, err)) < 0)
        return rc;
    if (reserve != NULL && (rc = pace_reserve_parse(reserve, &cfg->reserve_fraction, err)) < 0)
        return rc;
    return 0;
}

int cli_set_schema(struct base_err *err)
{
    return store_set_target_schema(cli_env_or("KEAPSYNC_SCHEMA", "keap"), err);
}

/* "<schema>.<*name>" in place of *name (NULL stays NULL). */
static int qualify(const char *schema, char **name, struct base_err *err)
{
    size_t n;
    char *q;

    if (*name == NULL)
        return 0;
    n = strlen(schema) + 1 + strlen(*name) + 1;
    q = malloc(n);
    if (q == NULL)
        return base_err_set(err, BASE_ENOMEM, "could not load the jobs: out of memory");
    snprintf(q, n, "%s.%s", schema, *name);
    free(*name);
    *name = q;
    return 0;
}

int cli_qualify_jobs(struct jobs_set *set, struct base_err *err)
{
    const char *schema = store_target_schema();
    int rc = 0;

    if (strcmp(schema, "keap") == 0)
        return 0;
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        rc = qualify(schema, &set->jobs[i].name, err);
        if (rc == 0)
            rc = qualify(schema, &set->jobs[i].parent_job, err);
    }
    return rc;
}

const char *cli_job_file_name(const char *name)
{
    const char *schema = store_target_schema();
    size_t n = strlen(schema);

    if (strcmp(schema, "keap") != 0 && strncmp(name, schema, n) == 0 && name[n] == '.')
        return name + n + 1;
    return name;
}

int cli_load_jobs(struct jobs_set *set, const char *only, struct base_err *err)
{
    int rc = jobs_load_dir(cli_env_or("KEAPSYNC_JOBS", "jobs"), set, err);

    if (rc == 0 && only != NULL)
        rc = jobs_select(set, only, err);
    if (rc == 0)
        rc = cli_qualify_jobs(set, err);
    if (rc < 0) {
        jobs_set_free(set);
        return rc;
    }
    return 0;
}

int cli_connect_db(struct store **s, struct base_err *err)
{
    return store_connect(s, cli_env_or("DATABASE_URL", NULL), err);
}

/* Connects and checks that `keapsync migrate` has been run with this version. */
int cli_connect_migrated(struct store **out, struct base_err *err)
{
    struct store *s;
    int version, rc;

    rc = cli_connect_db(&s, err);
    if (rc < 0)
        return rc;
    rc = store_schema_version(s, &version, err);
    if (rc < 0) {
        store_close(s);
        return rc;
    }
    if (version < store_latest_version()) {
        store_close(s);
        base_err_set(err, BASE_ECONFIG,
                     "the database schema is at version %d, this keapsync needs version %d",
                     version, store_latest_version());
        base_err_hint(err, "run \"keapsync migrate\" first");
        return BASE_ECONFIG;
    }
    *out = s;
    return 0;
}

int cli_evolve_jobs(struct store *s, const struct jobs_set *set, bool drop_columns,
                    struct base_err *err)
{
    for (int pass = 0; pass < 2; pass++) {
        struct store_evolve_options o = {.drop_columns = drop_columns, .check_only = pass == 0};

        for (size_t i = 0; i < set->n; i++) {
            const struct jobs_job *j = &set->jobs[i];
            struct store_table t = {j->table, &j->map, j->updated_field, j->parent_col};
            int rc;

            if (j->unresolved > 0) {
                if (pass == 0)
                    base_log_info("job \"%s\": its custom field labels are resolved when it "
                                  "runs; its table follows its job file then",
                                  j->name);
                continue;
            }
            rc = store_evolve_table(s, j->name, &t, &o, NULL, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}
