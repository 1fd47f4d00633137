/*
 * oauth.c: the OAuth2 access token of a run. sched_oauth_token hands out the token to use,
 * serialized across processes by the stored pair's row lock (store, keapsync.oauth_tokens);
 * during a run the token is refreshed on the database worker (OP_REFRESH) before it expires
 * and once after a 401, while sched_pump admits nothing; the new token is used only after its
 * pair is committed. The client id's day (ledger row "client:<id>") and the tenant's ceiling
 * for every credential together ("all:<tenant>") are reserved beside the tenant's own row.
 *
 * Words used here (keap.h, "OAuth2"): pair, generation, margin.
 */
#include "sched_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sched_token_clear(struct sched_token *t)
{
    if (t == NULL)
        return;
    base_secret_free(t->access_token);
    memset(t, 0, sizeof(*t));
}

int sched_oauth_token(struct store *s, const struct keap_oauth_client *c,
                      const struct store_token_key *key, int64_t have_generation, bool force,
                      int64_t now_ms, struct sched_token *out, struct base_err *err)
{
    struct store_oauth_row row = {0}, next = {0};
    struct keap_oauth_pair pair = {0};
    struct keap_oauth_view view;
    struct sched_token t = {0};
    bool found = false, rotated = false;
    const char *crash;
    int rc;

    rc = store_oauth_load(s, c->id, key, true, &row, &found, err);
    if (rc < 0)
        return rc;
    if (!found) {
        store_oauth_unlock(s);
        base_err_set(err, BASE_EAUTH, "no OAuth2 tokens are stored for client \"%s\"", c->id);
        base_err_hint(err, "authorize first: keapsync auth --code CODE --redirect-uri URI "
                           "(README, \"OAuth2\")");
        return BASE_EAUTH;
    }
    view.generation = row.generation;
    view.obtained_ms = row.obtained_ms;
    view.expires_ms = row.expires_ms;
    if (keap_oauth_decide(&view, have_generation, force, now_ms, &rotated) ==
        KEAP_OAUTH_USE_STORED) {
        store_oauth_unlock(s);
        t.access_token = row.access_token;
        row.access_token = NULL;
        t.generation = row.generation;
        t.obtained_ms = row.obtained_ms;
        t.expires_ms = row.expires_ms;
        t.rotated = rotated;
        goto done;
    }
    /* The lock is held while the token endpoint answers: nobody else spends this token. */
    rc = keap_oauth_refresh(c, row.refresh_token, &pair, err);
    if (rc < 0) {
        store_oauth_unlock(s);
        if (rc == BASE_EAUTH && strstr(err->msg, "invalid_grant") != NULL)
            base_err_hint(err,
                          "the stored refresh token is dead (used, revoked or lost in a "
                          "crash); %s",
                          SCHED_OAUTH_REAUTH_HINT);
        goto out;
    }
    crash = getenv("KEAPSYNC_TEST_CRASH_AFTER_TOKEN");
    if (crash != NULL && strcmp(crash, "1") == 0) {
        /* Tests only: the new pair is lost, as in a crash before the commit. */
        fprintf(stderr, "keapsync: KEAPSYNC_TEST_CRASH_AFTER_TOKEN: exiting before the commit\n");
        _exit(1);
    }
    next.access_token = pair.access_token;
    next.refresh_token = pair.refresh_token;
    pair.access_token = pair.refresh_token = NULL;
    snprintf(next.scope, sizeof(next.scope), "%s", pair.scope);
    next.obtained_ms = now_ms;
    next.expires_ms = now_ms + pair.expires_in_s * 1000;
    rc = store_oauth_save(s, c->id, key, &next, err);
    if (rc < 0)
        goto out; /* the new pair is lost: the next refresh says how to re-authorize */
    t.access_token = next.access_token;
    next.access_token = NULL;
    t.generation = next.generation;
    t.obtained_ms = next.obtained_ms;
    t.expires_ms = next.expires_ms;
    t.refreshed = true;
done:
    *out = t;
    rc = BASE_OK;
out:
    store_oauth_row_clear(&row);
    store_oauth_row_clear(&next);
    keap_oauth_pair_clear(&pair);
    return rc;
}

/* ---------------------------------------------------------------- during a run */

/* When the current token is due (wall ms). */
static int64_t refresh_due(const struct sched *s)
{
    return s->tok.expires_ms - keap_oauth_margin_ms(s->tok.obtained_ms, s->tok.expires_ms);
}

bool sched_oauth_pause(struct sched *s)
{
    struct sched_op *op;

    if (s->opt->oauth == NULL)
        return false;
    if (s->tok.refreshing)
        return true;
    if (!s->tok.force && now_wall(s) < refresh_due(s))
        return false;
    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        sched_nomem(s, "refreshing the access token");
        return true;
    }
    op->kind = OP_REFRESH;
    op->have_gen = s->tok.gen;
    op->force = s->tok.force;
    s->tok.refreshing = true;
    op_submit(s, op);
    return true;
}

bool sched_oauth_on_401(struct sched *s, const struct sched_page *pg)
{
    if (s->opt->oauth == NULL)
        return false;
    if (pg->token_gen != s->tok.gen)
        return true; /* sent with a token replaced since: send it again with the new one */
    if (s->tok.retried_401)
        return false; /* refreshed once for a 401 already, and still refused */
    s->tok.force = true;
    s->tok.retried_401 = true;
    return true;
}

void sched_oauth_refresh_work(struct sched_op *op)
{
    struct sched *s = op->s;
    const struct sched_oauth *o = s->opt->oauth;

    op->rc = sched_oauth_token(s->store, o->client, o->key, op->have_gen, op->force, now_wall(s),
                               &op->token, &op->err);
}

void sched_oauth_refresh_done(struct sched *s, struct sched_op *op)
{
    struct keap_credential cred = {0};
    char **headers = NULL;
    char why[1100];
    int rc;

    s->tok.refreshing = false;
    s->tok.force = false;
    if (op->rc < 0 && op_nomem(op))
        goto out;
    if (op->rc < 0) {
        /* The command line adds the hint on how to re-authorize to an AUTH stop. */
        snprintf(why, sizeof(why), "%s", op->err.msg);
        if (op->rc == BASE_EAUTH) {
            sched_stop(s, STOP_AUTH, why);
        } else {
            for (size_t i = 0; i < s->njobs; i++)
                if (!job_terminal(&s->jobs[i]))
                    job_set_state(&s->jobs[i], SCHED_JOB_FAILED, why);
        }
        goto out;
    }
    cred.access_token = op->token.access_token;
    rc = keap_auth_headers(&cred, &headers);
    if (rc < 0) {
        sched_nomem(s, "building request headers");
        goto out;
    }
    /* http_send copies header lines: requests in flight keep theirs. */
    keap_headers_free(s->auth_headers);
    s->auth_headers = headers;
    base_log_info("access token %s (generation %" PRId64 ", expires in %" PRId64 " s)",
                  op->token.refreshed ? "refreshed"
                  : op->token.rotated ? "rotated by another process, using it"
                                      : "still valid",
                  op->token.generation, (op->token.expires_ms - now_wall(s)) / 1000);
    s->tok.gen = op->token.generation;
    s->tok.obtained_ms = op->token.obtained_ms;
    s->tok.expires_ms = op->token.expires_ms;
out:
    sched_token_clear(&op->token);
}

/* ---------------------------------------------------------------- the ledger's other rows */

int sched_ledger_client_key(const struct sched *s, char *buf, size_t n)
{
    if (s->opt->oauth == NULL || s->opt->oauth->app_per_day <= 0)
        return BASE_ENOTFOUND;
    return base_snprintf(buf, n, "client:%s", s->opt->oauth->client->id);
}

int sched_ledger_ceiling_key(const struct sched *s, const char *tenant, char *buf, size_t n)
{
    if (s->opt->ceiling_per_day <= 0 || tenant == NULL)
        return BASE_ENOTFOUND;
    return base_snprintf(buf, n, "all:%s", tenant);
}

void sched_oauth_reserve_more(struct sched_op *op)
{
    struct sched *s = op->s;
    char keys[2][600];
    int64_t budgets[2];
    int nkeys = 0;

    if (op->rc < 0 || op->granted <= 0)
        return;
    if (sched_ledger_client_key(s, keys[nkeys], sizeof(keys[0])) == 0)
        budgets[nkeys++] = s->opt->oauth->app_per_day;
    if (sched_ledger_ceiling_key(s, op->tenant, keys[nkeys], sizeof(keys[0])) == 0)
        budgets[nkeys++] = s->opt->ceiling_per_day;
    for (int i = 0; i < nkeys; i++) {
        int64_t g = 0, total = 0;

        op->rc = store_ledger_reserve(s->store, keys[i], op->day_wall, budgets[i], op->granted, &g,
                                      &total, &op->err);
        if (op->rc < 0)
            return;
        if (g < op->granted) {
            struct base_err e2;
            int64_t back = op->granted - g;

            base_log_info("ledger \"%s\": %" PRId64 " of %" PRId64 " requests left today", keys[i],
                          g, op->granted);
            if (store_ledger_release(s->store, op->tenant, op->day_wall, back, &e2) < 0)
                base_log_warning("%s", e2.msg);
            for (int k = 0; k < i; k++)
                if (store_ledger_release(s->store, keys[k], op->day_wall, back, &e2) < 0)
                    base_log_warning("%s", e2.msg);
            op->granted = g;
        }
    }
}

void sched_oauth_release_more(struct sched *s, int64_t unspent)
{
    struct base_err e2;
    char key[600];

    if (unspent <= 0)
        return;
    if (sched_ledger_client_key(s, key, sizeof(key)) == 0 &&
        store_ledger_release(s->store, key, now_wall(s), unspent, &e2) < 0)
        base_log_warning("%s", e2.msg);
    if (sched_ledger_ceiling_key(s, s->tenant, key, sizeof(key)) == 0 &&
        store_ledger_release(s->store, key, now_wall(s), unspent, &e2) < 0)
        base_log_warning("%s", e2.msg);
}
