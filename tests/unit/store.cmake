# store's tests need a real PostgreSQL: DATABASE_URL (deploy/test.sh sets it). Each program
# creates and drops a database of its own (store_fixture.c), so they may run in parallel.
foreach(t test_store test_store_sink test_store_evolve test_store_lease)
  keapsync_unit_test(${t} SOURCES ${t}.c store_fixture.c LIBS ks_store Threads::Threads)
  set_tests_properties(unit.${t} PROPERTIES LABELS "unit;postgres")
endforeach()
