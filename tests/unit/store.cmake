# store's tests need a real PostgreSQL: DATABASE_URL (deploy/test.sh sets it).
keapsync_unit_test(test_store SOURCES test_store.c LIBS ks_store Threads::Threads)
set_tests_properties(unit.test_store PROPERTIES LABELS "unit;postgres")
