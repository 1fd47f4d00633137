# bench_keapsim: pages/s keapsim serves with limits off, beside the 100 pages/s target.
# Run by hand (never by ctest): cmake --build build --target bench_keapsim, or
# KEAPSYNC_BUILD=build bash tests/bench/bench_keapsim.sh
add_custom_target(bench_keapsim
  COMMAND ${CMAKE_COMMAND} -E env KEAPSYNC_BUILD=${CMAKE_BINARY_DIR}
          bash ${CMAKE_CURRENT_SOURCE_DIR}/bench_keapsim.sh
  DEPENDS keapsim
  USES_TERMINAL)
