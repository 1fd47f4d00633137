keapsync_unit_test(test_map SOURCES test_map.c LIBS ks_map)
