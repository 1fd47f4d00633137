keapsync_unit_test(test_http SOURCES test_http.c LIBS ks_http PkgConfig::MHD Threads::Threads)
