/*
 * tokens.c: the OAuth2 token pair of a client (keapsync.oauth_tokens, sql/0005_oauth.sql),
 * its row lock, and its encryption at rest.
 *
 * Words used here:
 *   pair        an access token, the refresh token that replaces it, and when the access token
 *               expires. Refresh tokens are single-use: the stored pair is the only valid one.
 *   generation  bumped by every save, so a process can tell the pair was rotated by another.
 *   lock        SELECT ... FOR UPDATE on the client's row in an open transaction: every other
 *               process that wants to refresh waits on it until the new pair is committed.
 *   sealed      "sb1:" + base64(nonce || libsodium crypto_secretbox of the token), with the
 *               32-byte key of KEAPSYNC_TOKEN_KEY_FILE. Rows without a key hold the tokens in
 *               clear (encrypted = false).
 */
#include "store_int.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEAL_PREFIX "sb1:"
/* A token longer than this is not a token. */
#define TOKEN_MAX 4096

static int sodium_ready(struct base_err *err)
{
    if (sodium_init() < 0)
        return base_err_set(err, BASE_EIO, "could not initialise libsodium");
    return BASE_OK;
}

int store_token_key_load(const char *path, struct store_token_key *key, struct base_err *err)
{
    unsigned char buf[STORE_TOKEN_KEY_LEN + 1];
    size_t len = 0;
    int rc = base_read_private_file(path, "token key file", sizeof(buf), buf, &len, err);

    if (rc == BASE_ECONFIG && strstr(err->msg, "is larger than") != NULL)
        len = sizeof(buf); /* reported below as the wrong length */
    else if (rc < 0)
        return rc;
    if (len != STORE_TOKEN_KEY_LEN) {
        base_wipe(buf, sizeof(buf));
        base_err_set(err, BASE_ECONFIG, "token key file \"%s\" holds %s%zu bytes, not %d", path,
                     len > STORE_TOKEN_KEY_LEN ? "more than " : "",
                     len > STORE_TOKEN_KEY_LEN ? (size_t)STORE_TOKEN_KEY_LEN : len,
                     STORE_TOKEN_KEY_LEN);
        base_err_hint(err, "make one with: (umask 077; head -c 32 /dev/urandom > %s)", path);
        return BASE_ECONFIG;
    }
    memcpy(key->k, buf, STORE_TOKEN_KEY_LEN);
    base_wipe(buf, sizeof(buf));
    return BASE_OK;
}

int store_token_seal(const struct store_token_key *key, const char *plain, char **out,
                     struct base_err *err)
{
    size_t n = strlen(plain), blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n;
    size_t b64 = sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_ORIGINAL);
    unsigned char *box;
    char *txt;
    int rc = sodium_ready(err);

    if (rc < 0)
        return rc;
    if (n > TOKEN_MAX)
        return base_err_set(err, BASE_EINVAL, "could not encrypt a token: longer than %d bytes",
                            TOKEN_MAX);
    box = malloc(blen);
    txt = malloc(sizeof(SEAL_PREFIX) - 1 + b64);
    if (box == NULL || txt == NULL) {
        free(box);
        free(txt);
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    }
    randombytes_buf(box, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *)plain, n, box,
                          key->k);
    memcpy(txt, SEAL_PREFIX, sizeof(SEAL_PREFIX) - 1);
    sodium_bin2base64(txt + sizeof(SEAL_PREFIX) - 1, b64, box, blen,
                      sodium_base64_VARIANT_ORIGINAL);
    free(box);
    *out = txt;
    return BASE_OK;
}

int store_token_open(const struct store_token_key *key, const char *sealed, char **out,
                     struct base_err *err)
{
    size_t slen, blen = 0;
    unsigned char *box;
    char *plain;
    int rc = sodium_ready(err);

    if (rc < 0)
        return rc;
    if (strncmp(sealed, SEAL_PREFIX, sizeof(SEAL_PREFIX) - 1) != 0)
        return base_err_set(err, BASE_EPROTO,
                            "a stored token is not encrypted as keapsync "
                            "encrypts");
    sealed += sizeof(SEAL_PREFIX) - 1;
    slen = strlen(sealed);
    if (slen > 2 * TOKEN_MAX)
        return base_err_set(err, BASE_EPROTO, "a stored token is too long");
    box = malloc(slen + 1);
    if (box == NULL)
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    if (sodium_base642bin(box, slen + 1, sealed, slen, NULL, &blen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        blen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
        free(box);
        return base_err_set(err, BASE_EPROTO, "a stored token is not valid base64");
    }
    plain = malloc(blen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES + 1);
    if (plain == NULL) {
        free(box);
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    }
    if (crypto_secretbox_open_easy((unsigned char *)plain, box + crypto_secretbox_NONCEBYTES,
                                   blen - crypto_secretbox_NONCEBYTES, box, key->k) != 0) {
        free(box);
        free(plain);
        base_err_set(err, BASE_ECONFIG,
                     "the stored OAuth tokens cannot be decrypted with the "
                     "key of KEAPSYNC_TOKEN_KEY_FILE");
        base_err_hint(err, "use the key file they were stored with, or authorize again with "
                           "\"keapsync auth\"");
        return BASE_ECONFIG;
    }
    plain[blen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES] = '\0';
    free(box);
    *out = plain;
    return BASE_OK;
}

void store_oauth_row_clear(struct store_oauth_row *r)
{
    if (r == NULL)
        return;
    base_secret_free(r->access_token);
    base_secret_free(r->refresh_token);
    memset(r, 0, sizeof(*r));
}

/* A column's value in the clear: copied, or opened with key. */
static int token_column(const char *v, bool encrypted, const struct store_token_key *key,
                        const char *client_id, char **out, struct base_err *err)
{
    if (!encrypted) {
        *out = strdup(v);
        return *out ? BASE_OK : base_err_set(err, BASE_ENOMEM, "out of memory");
    }
    if (key == NULL) {
        base_err_set(err, BASE_ECONFIG,
                     "the stored OAuth tokens of client \"%s\" are encrypted and "
                     "KEAPSYNC_TOKEN_KEY_FILE is not set",
                     client_id);
        base_err_hint(err, "set KEAPSYNC_TOKEN_KEY_FILE to the key file they were stored with");
        return BASE_ECONFIG;
    }
    return store_token_open(key, v, out, err);
}

int store_oauth_load(struct store *s, const char *client_id, const struct store_token_key *key,
                     bool lock, struct store_oauth_row *out, bool *found, struct base_err *err)
{
    const char *params[1] = {client_id};
    struct store_oauth_row r = {0};
    PGresult *res = NULL;
    bool enc;
    int rc;

    *found = false;
    if (lock && (rc = store_query(s, NULL, PGRES_COMMAND_OK, "BEGIN", 0, NULL, err,
                                  "could not lock the OAuth tokens")) < 0)
        return rc;
    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     lock ? "SELECT access_token, refresh_token, encrypted, coalesce(scope, ''), "
                            "(extract(epoch FROM obtained_at) * 1000)::bigint, "
                            "(extract(epoch FROM expires_at) * 1000)::bigint, generation "
                            "FROM keapsync.oauth_tokens WHERE client_id = $1 FOR UPDATE"
                          : "SELECT access_token, refresh_token, encrypted, coalesce(scope, ''), "
                            "(extract(epoch FROM obtained_at) * 1000)::bigint, "
                            "(extract(epoch FROM expires_at) * 1000)::bigint, generation "
                            "FROM keapsync.oauth_tokens WHERE client_id = $1",
                     1, params, err, "could not read the OAuth tokens of client \"%s\"", client_id);
    if (rc < 0)
        goto out;
    if (PQntuples(res) == 0)
        goto out; /* not found; the lock's transaction stays open for a first save */
    enc = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    snprintf(r.scope, sizeof(r.scope), "%s", PQgetvalue(res, 0, 3));
    if (base_parse_int64(PQgetvalue(res, 0, 4), &r.obtained_ms) < 0 ||
        base_parse_int64(PQgetvalue(res, 0, 5), &r.expires_ms) < 0 ||
        base_parse_int64(PQgetvalue(res, 0, 6), &r.generation) < 0) {
        rc = base_err_set(err, BASE_EDB, "could not read the OAuth tokens: unexpected result");
        goto out;
    }
    rc = token_column(PQgetvalue(res, 0, 0), enc, key, client_id, &r.access_token, err);
    if (rc == 0)
        rc = token_column(PQgetvalue(res, 0, 1), enc, key, client_id, &r.refresh_token, err);
    if (rc < 0)
        goto out;
    r.encrypted = enc;
    *out = r;
    memset(&r, 0, sizeof(r));
    *found = true;
out:
    if (res != NULL) {
        /* The result held the tokens (in clear when not encrypted). */
        for (int c = 0; PQntuples(res) > 0 && c < 2; c++)
            base_wipe(PQgetvalue(res, 0, c), (size_t)PQgetlength(res, 0, c));
        PQclear(res);
    }
    store_oauth_row_clear(&r);
    if (rc < 0 && lock)
        store_rollback(s);
    return rc;
}

int store_oauth_save(struct store *s, const char *client_id, const struct store_token_key *key,
                     struct store_oauth_row *row, struct base_err *err)
{
    char obtained[24], expires[24];
    char *a = NULL, *r = NULL;
    const char *params[7];
    PGresult *res = NULL;
    bool in_tx = PQtransactionStatus(s->conn) == PQTRANS_INTRANS;
    int64_t gen;
    int rc = BASE_OK;

    if (key != NULL) {
        rc = store_token_seal(key, row->access_token, &a, err);
        if (rc == 0)
            rc = store_token_seal(key, row->refresh_token, &r, err);
        if (rc < 0)
            goto out;
    }
    snprintf(obtained, sizeof(obtained), "%" PRId64, row->obtained_ms);
    snprintf(expires, sizeof(expires), "%" PRId64, row->expires_ms);
    params[0] = client_id;
    params[1] = a ? a : row->access_token;
    params[2] = r ? r : row->refresh_token;
    params[3] = key ? "t" : "f";
    params[4] = row->scope;
    params[5] = obtained;
    params[6] = expires;
    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "INSERT INTO keapsync.oauth_tokens AS t (client_id, access_token, "
                     "refresh_token, encrypted, scope, obtained_at, expires_at) "
                     "VALUES ($1, $2, $3, $4::boolean, $5, to_timestamp($6::bigint / 1000.0), "
                     "to_timestamp($7::bigint / 1000.0)) "
                     "ON CONFLICT (client_id) DO UPDATE SET access_token = EXCLUDED.access_token, "
                     "refresh_token = EXCLUDED.refresh_token, encrypted = EXCLUDED.encrypted, "
                     "scope = EXCLUDED.scope, obtained_at = EXCLUDED.obtained_at, "
                     "expires_at = EXCLUDED.expires_at, generation = t.generation + 1, "
                     "updated_at = now() RETURNING generation",
                     7, params, err, "could not save the OAuth tokens of client \"%s\"", client_id);
    if (rc < 0)
        goto out;
    if (PQntuples(res) != 1 || base_parse_int64(PQgetvalue(res, 0, 0), &gen) < 0) {
        rc = base_err_set(err, BASE_EDB, "could not save the OAuth tokens: unexpected result");
        goto out;
    }
    if (in_tx)
        rc = store_commit(s, err, "could not commit the new OAuth tokens");
    if (rc == 0)
        row->generation = gen;
out:
    PQclear(res);
    if (rc < 0 && in_tx)
        store_rollback(s);
    base_secret_free(a);
    base_secret_free(r);
    return rc;
}

void store_oauth_unlock(struct store *s)
{
    store_rollback(s);
}
