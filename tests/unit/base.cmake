keapsync_unit_test(test_base SOURCES test_base.c LIBS ks_base)
