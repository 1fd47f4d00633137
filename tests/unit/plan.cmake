# sched's quota planner: the size probe on a fake oracle, requests per list, the schedule.
keapsync_unit_test(test_plan SOURCES test_plan.c LIBS ks_sched m)
