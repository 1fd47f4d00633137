keapsync_unit_test(test_base SOURCES test_base.c LIBS ks_base)
keapsync_unit_test(test_cron SOURCES test_cron.c LIBS ks_base)
