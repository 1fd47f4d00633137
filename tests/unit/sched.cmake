# sched's cursor (pure, on a fake clock); reads the shipped jobs/contacts.json.
keapsync_unit_test(test_sched SOURCES test_sched.c LIBS ks_sched)
