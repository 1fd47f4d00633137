# bench_reactive: the reactive baseline of tests/bench/bench_pacing.sh (as many requests in
# flight as allowed, exponential back-off with jitter on 429). Run by hand through the script,
# never by ctest.
add_executable(bench_reactive reactive.c)
target_link_libraries(bench_reactive PRIVATE ks_keap ks_http ks_base PkgConfig::UV)
