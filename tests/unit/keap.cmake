keapsync_unit_test(test_keap SOURCES test_keap.c LIBS ks_keap)
