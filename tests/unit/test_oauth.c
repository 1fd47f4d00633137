/*
 * test_oauth.c: the OAuth2 pieces that need no server: a token sealed with the key of
 * KEAPSYNC_TOKEN_KEY_FILE opens with that key and only that key, key files of the wrong
 * length or mode are refused, and the refresh decision (margin, a pair rotated by another
 * process, a 401).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keap.h"
#include "store.h"
#include "test_assert.h"

static void key_fill(struct store_token_key *k, unsigned char v)
{
    memset(k->k, v, sizeof(k->k));
}

static void test_seal_round_trip(void **state)
{
    struct store_token_key key, other;
    struct base_err err;
    const char *tok = "ksa0123456789abcdef0123456789abcdef";
    char *sealed = NULL, *sealed2 = NULL, *plain = NULL;

    (void)state;
    key_fill(&key, 7);
    key_fill(&other, 8);
    assert_int_equal(store_token_seal(&key, tok, &sealed, &err), 0);
    assert_non_null(strstr(sealed, "sb1:"));
    assert_null(strstr(sealed, tok)); /* not in clear */
    /* A fresh nonce each time: the same token never seals to the same text. */
    assert_int_equal(store_token_seal(&key, tok, &sealed2, &err), 0);
    assert_string_not_equal(sealed, sealed2);
    assert_int_equal(store_token_open(&key, sealed, &plain, &err), 0);
    assert_string_equal(plain, tok);
    free(plain);
    plain = NULL;
    /* The wrong key: a configuration error naming the key file, with a hint. */
    assert_int_equal(store_token_open(&other, sealed, &plain, &err), BASE_ECONFIG);
    assert_null(plain);
    assert_non_null(strstr(err.msg, "KEAPSYNC_TOKEN_KEY_FILE"));
    assert_true(err.hint[0] != '\0');
    /* Tampered text fails too, and clear text is not taken for sealed. */
    sealed[10] = sealed[10] == 'A' ? 'B' : 'A';
    ASSERT_LT(store_token_open(&key, sealed, &plain, &err), 0);
    ASSERT_LT(store_token_open(&key, tok, &plain, &err), 0);
    free(sealed);
    free(sealed2);
}

/* Writes n bytes of v to a fresh file of mode; returns its path (static buffer). */
static const char *key_file(size_t n, mode_t mode)
{
    static char path[64];
    unsigned char buf[64];
    FILE *f;

    snprintf(path, sizeof(path), "/tmp/ks-test-key.%d", (int)getpid());
    unlink(path);
    memset(buf, 0x5a, sizeof(buf));
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void test_key_file(void **state)
{
    struct store_token_key key;
    struct base_err err;
    const char *p;

    (void)state;
    p = key_file(32, 0600);
    assert_int_equal(store_token_key_load(p, &key, &err), 0);
    assert_int_equal(key.k[0], 0x5a);
    p = key_file(31, 0600);
    assert_int_equal(store_token_key_load(p, &key, &err), BASE_ECONFIG);
    assert_non_null(strstr(err.msg, "holds 31 bytes, not 32"));
    p = key_file(33, 0600);
    assert_int_equal(store_token_key_load(p, &key, &err), BASE_ECONFIG);
    assert_non_null(strstr(err.msg, "not 32"));
    p = key_file(32, 0640);
    assert_int_equal(store_token_key_load(p, &key, &err), BASE_ECONFIG);
    assert_non_null(strstr(err.msg, "readable by other users"));
    unlink(p);
    assert_int_equal(store_token_key_load(p, &key, &err), BASE_ECONFIG);
}

static void test_margin(void **state)
{
    (void)state;
    /* A fifth of the lifetime, at most 5 min. */
    assert_int_equal(keap_oauth_margin_ms(0, 2000), 400);
    assert_int_equal(keap_oauth_margin_ms(0, 86400000), KEAP_OAUTH_MARGIN_MAX_MS);
    assert_int_equal(keap_oauth_margin_ms(1000, 1000), 0);
    assert_int_equal(keap_oauth_margin_ms(5000, 1000), 0);
}

static void test_decide(void **state)
{
    /* issued at 0, expires at 10 s: margin 2 s, due from 8 s on */
    struct keap_oauth_view v = {.generation = 5, .obtained_ms = 0, .expires_ms = 10000};
    bool rotated = true;

    (void)state;
    /* Holding nothing yet (set-up): use the stored token until it is due. */
    assert_int_equal(keap_oauth_decide(&v, -1, false, 7999, &rotated), KEAP_OAUTH_USE_STORED);
    assert_false(rotated);
    assert_int_equal(keap_oauth_decide(&v, -1, false, 8000, &rotated), KEAP_OAUTH_REFRESH);
    /* Holding the stored generation: refresh when due, or when forced by a 401. */
    assert_int_equal(keap_oauth_decide(&v, 5, false, 5000, &rotated), KEAP_OAUTH_USE_STORED);
    assert_false(rotated);
    assert_int_equal(keap_oauth_decide(&v, 5, false, 8000, &rotated), KEAP_OAUTH_REFRESH);
    assert_int_equal(keap_oauth_decide(&v, 5, true, 1000, &rotated), KEAP_OAUTH_REFRESH);
    assert_int_equal(keap_oauth_decide(&v, 5, false, 20000, &rotated), KEAP_OAUTH_REFRESH);
    /* Rotated by another process while we waited for the lock: use its pair, even after a
     * 401 of ours and even though our own token is due; never spend the new refresh token. */
    assert_int_equal(keap_oauth_decide(&v, 4, false, 5000, &rotated), KEAP_OAUTH_USE_STORED);
    assert_true(rotated);
    assert_int_equal(keap_oauth_decide(&v, 4, true, 5000, &rotated), KEAP_OAUTH_USE_STORED);
    assert_true(rotated);
    /* ... unless the other process's pair is itself due (it rotated long ago). */
    assert_int_equal(keap_oauth_decide(&v, 4, true, 9000, &rotated), KEAP_OAUTH_REFRESH);
    assert_true(rotated);
}

static void test_client_env(void **state)
{
    struct keap_oauth_client c = {0};
    struct base_err err;
    bool configured = true;
    const char *p;

    (void)state;
    unsetenv("KEAP_CLIENT_ID");
    unsetenv("KEAP_CLIENT_SECRET");
    unsetenv("KEAP_CLIENT_SECRET_FILE");
    unsetenv("KEAP_TOKEN_URL");
    assert_int_equal(keap_oauth_client_from_env(&c, &configured, &err), 0);
    assert_false(configured);
    setenv("KEAP_CLIENT_ID", "app1", 1);
    assert_int_equal(keap_oauth_client_from_env(&c, &configured, &err), BASE_ECONFIG);
    assert_non_null(strstr(err.msg, "no client secret"));
    p = key_file(20, 0644);
    setenv("KEAP_CLIENT_SECRET_FILE", p, 1);
    assert_int_equal(keap_oauth_client_from_env(&c, &configured, &err), BASE_ECONFIG);
    assert_non_null(strstr(err.msg, "readable by other users"));
    assert_null(strstr(err.msg, "ZZZZ"));
    chmod(p, 0600);
    assert_int_equal(keap_oauth_client_from_env(&c, &configured, &err), 0);
    assert_true(configured);
    assert_string_equal(c.id, "app1");
    assert_int_equal(strlen(c.secret), 20);
    assert_string_equal(c.token_url, KEAP_DEFAULT_TOKEN_URL);
    keap_oauth_client_clear(&c);
    assert_null(c.secret);
    unlink(p);
    unsetenv("KEAP_CLIENT_ID");
    unsetenv("KEAP_CLIENT_SECRET_FILE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_round_trip), cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_margin),          cmocka_unit_test(test_decide),
        cmocka_unit_test(test_client_env),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
