# OAuth2: the token row's encryption (store, no database) and the refresh decision (keap).
keapsync_unit_test(test_oauth SOURCES test_oauth.c LIBS ks_store ks_keap)
