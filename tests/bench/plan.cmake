# bench_plan: `keapsync plan`'s predicted requests beside what the sync spends (1,000,000
# contacts). Run by hand (never by ctest): cmake --build build --target bench_plan, or
# KEAPSYNC_BUILD=build bash tests/bench/bench_plan.sh
add_custom_target(bench_plan
  COMMAND ${CMAKE_COMMAND} -E env KEAPSYNC_BUILD=${CMAKE_BINARY_DIR}
          bash ${CMAKE_CURRENT_SOURCE_DIR}/bench_plan.sh
  DEPENDS keapsync keapsim
  USES_TERMINAL)
