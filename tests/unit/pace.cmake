keapsync_unit_test(test_pace SOURCES test_pace.c LIBS ks_pace)
