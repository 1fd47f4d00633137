keapsync_unit_test(test_jobs SOURCES test_jobs.c LIBS ks_jobs)
