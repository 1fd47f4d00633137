# bench_ingest: store_commit_page into a warm 1M-row table vs a plain COPY, same run.
# Needs DATABASE_URL (a throwaway cluster): DATABASE_URL=... build/bench_ingest [--warm N]
add_executable(bench_ingest bench_ingest.c)
target_link_libraries(bench_ingest PRIVATE ks_store ks_map)
