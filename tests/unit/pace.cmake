keapsync_unit_test(test_pace SOURCES test_pace.c LIBS ks_pace)
keapsync_unit_test(test_pace_day SOURCES test_pace_day.c LIBS ks_pace)
keapsync_unit_test(test_pace_margin SOURCES test_pace_margin.c LIBS ks_pace)
