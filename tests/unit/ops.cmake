# ops' tests: the daemon's metrics server against a real PostgreSQL (DATABASE_URL, the store
# fixture's database of its own) and over HTTP (libcurl).
keapsync_unit_test(test_ops SOURCES test_ops.c store_fixture.c
                   LIBS ks_ops ks_store PkgConfig::CURL Threads::Threads)
set_tests_properties(unit.test_ops PROPERTIES LABELS "unit;postgres")
