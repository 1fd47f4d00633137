/*
 * ops.c: the database worker. Operations (struct sched_op) queue on the run and execute one
 * at a time: the work half on libuv's thread pool, the done half back on the loop thread.
 * The next operation starts only from the previous one's done half, so they run in the order
 * queued and never two at once. struct sched_cursor (sched_int.h) says who writes a job's
 * cursor when.
 */
#include "sched_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void op_work_cb(uv_work_t *w);
static void op_after_work_cb(uv_work_t *w, int status);

bool sched_db_retry(struct sched *s, int *attempt, struct base_err *err)
{
    char why[512];

    if (!store_retryable(s->store, err))
        return false;
    if (*attempt == 1)
        s->db_failed_ms = uv_hrtime() / 1000000;
    snprintf(why, sizeof(why), "%s", err->msg);
    for (;;) {
        int64_t wait = SCHED_DB_BACKOFF_MIN_MS;
        uint64_t spent = uv_hrtime() / 1000000 - s->db_failed_ms;
        struct base_err e2;

        for (int i = 1; i < *attempt && wait < SCHED_DB_BACKOFF_MAX_MS; i++)
            wait *= 2;
        if (wait > SCHED_DB_BACKOFF_MAX_MS)
            wait = SCHED_DB_BACKOFF_MAX_MS;
        if (*attempt >= SCHED_DB_ATTEMPTS || spent + (uint64_t)wait > SCHED_DB_RETRY_MAX_MS ||
            atomic_load(&s->db_give_up)) {
            size_t n = strlen(err->msg);

            if (!atomic_load(&s->db_give_up) && n + 48 < sizeof(err->msg))
                snprintf(err->msg + n, sizeof(err->msg) - n,
                         " (after %d attempts in %" PRIu64 " s)", *attempt, spent / 1000);
            return false;
        }
        base_log_warning("the database failed: %s; trying again in %" PRId64 " s (attempt %d of "
                         "%d)",
                         why, wait / 1000, *attempt + 1, SCHED_DB_ATTEMPTS);
        /* Slices, so that a signal is not kept waiting for the whole backoff. */
        for (int64_t slept = 0; slept < wait && !atomic_load(&s->db_give_up); slept += 100)
            uv_sleep(100);
        (*attempt)++;
        if (store_connection_ok(s->store))
            return true;
        base_err_clear(&e2);
        if (store_reconnect(s->store, &e2) == 0) {
            base_log_info("reconnected to the database");
            return true;
        }
        snprintf(why, sizeof(why), "%s", e2.msg);
    }
}

/*
 * Commits the page's COPY rows (job->copy, nrows of them) with the checkpoint of cursor
 * `after` and the page's requests in the ledger, in one transaction. On failure op->result
 * is OPR_DB_ERROR and op->err says why.
 */
int op_commit_rows(struct sched_op *op, const struct sched_cursor *after, int64_t nrows)
{
    struct sched_page *pg = op->page;
    struct sched_job *job = pg->job;
    struct store_page sp;
    struct base_buf ckpt;
    char lease[128];
    int rc;

    base_buf_init(&ckpt, 64 * 1024);
    rc = cursor_checkpoint(after, &ckpt);
    if (rc < 0) {
        base_err_set(&op->err, rc, "could not build the checkpoint of \"%s\"", job->def->name);
    } else {
        memset(&sp, 0, sizeof(sp));
        sp.table = &job->table;
        sp.rows = job->copy.data ? job->copy.data : "";
        sp.rows_len = job->copy.len;
        sp.nrows = nrows;
        sp.job = job->def->name;
        sp.checkpoint = ckpt.data;
        sp.tenant = op->tenant;
        sp.day_wall = pg->sent_wall;
        sp.requests = pg->requests;
        sp.sweep = op->sweep;
        sp.sweep_parent = pg->parent_id;
        sp.sweep_keep = op->sweep_keep;
        if (job->sweeping) {
            sp.seen_key = job->def->name;
            sp.seen_ids = op->seen_ids;
            sp.seen_close = op->seen_close;
            sp.seen_since = job->cur.mark;
        }
        sp.gone_ids = op->gone_ids;
        if (job->holds_lease) {
            snprintf(lease, sizeof(lease), "job:%s", job->def->name);
            sp.lease = lease;
            sp.lease_holder = op->s->holder;
            sp.lease_ttl_ms = sched_lease_ttl_ms();
        }
        {
            static const double bounds[] = SCHED_COMMIT_BUCKETS;
            uint64_t t0 = uv_hrtime();
            double secs;
            size_t b = 0;

            int attempt = 1;

            /* The transaction is the page's, whole: running it again is running it once. */
            while ((rc = store_commit_page(op->s->store, &sp, &op->pres, &op->err)) < 0 &&
                   sched_db_retry(op->s, &attempt, &op->err))
                base_err_clear(&op->err);
            secs = (double)(uv_hrtime() - t0) / 1e9;
            while (b < BASE_ARRAY_SIZE(bounds) && secs > bounds[b])
                b++;
            op->s->commit_buckets[b]++;
            op->s->commit_seconds += secs;
        }
    }
    if (rc < 0)
        op->result = OPR_DB_ERROR;
    base_buf_free(&ckpt);
    return rc;
}

/* Is name among names[0..n)? */
static bool name_in(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/*
 * The record members this job's page work reads, for a pruned parse: the first key of the id
 * path and of every column path, and "status" and "product" (the sync sweep's). A member that
 * only whole-value jsonb columns read is kept raw (its text as received, never reprinted);
 * the rest are parsed. NULL (parse everything) if out of memory.
 */
static const struct keap_keep *job_keep(struct sched_job *job)
{
    const struct map_spec *m = &job->def->map;
    size_t nfull = 0, nraw = 0, max = m->ncols + 3;
    const char **full, **raw;

    if (job->keep_names != NULL && job->keep_def == job->def)
        return &job->keep;
    free(job->keep_names);
    job->keep_names = NULL;
    full = calloc(2 * max, sizeof(*full));
    if (full == NULL)
        return NULL;
    raw = full + max;
    full[nfull++] = "status";
    full[nfull++] = "product";
    if (m->id.nparts > 0 && m->id.index[0] == -1 && !name_in(full, nfull, m->id.parts[0]))
        full[nfull++] = m->id.parts[0];
    for (size_t i = 0; i < m->ncols; i++) {
        const struct map_column *col = &m->cols[i];
        bool whole = col->nparts == 1 && col->type == MAP_JSONB;

        if (col->nparts <= 0 || col->index[0] != -1 || name_in(full, nfull, col->parts[0]))
            continue; /* an index or selector finds nothing in an object */
        if (!whole) {
            full[nfull++] = col->parts[0];
            continue;
        }
        /* raw unless another column reads into it (a later one: checked below) */
        if (!name_in(raw, nraw, col->parts[0]))
            raw[nraw++] = col->parts[0];
    }
    for (size_t i = 0; i < nraw;) {
        if (name_in(full, nfull, raw[i]))
            raw[i] = raw[--nraw];
        else
            i++;
    }
    job->keep_names = full;
    job->keep_def = job->def;
    job->keep.full = full;
    job->keep.nfull = nfull;
    job->keep.raw = raw;
    job->keep.nraw = nraw;
    return &job->keep;
}

static void op_page_work(struct sched_op *op)
{
    struct sched_page *pg = op->page;
    struct sched_job *job = pg->job;
    const struct jobs_job *def = job->def;
    struct sched_cursor *c = &job->cur;
    struct keap_page page = {0};
    struct map_stats ms = {0};
    struct sched_cursor next;
    const cJSON *rec;
    int first, n, rc, skipped = 0;

    if (pg->epoch != c->epoch || c->done) {
        op->result = OPR_DISCARDED;
        goto out;
    }
    rc = keap_page_parse_keep(pg->body.data ? pg->body.data : (char *)"", pg->body.len,
                              def->array_key, job_keep(job), &page, &op->err);
    if (rc == BASE_ENOMEM) {
        /* The run stops (op_nomem): fetching the page again would not help. */
        base_err_set(&op->err, BASE_ENOMEM, "out of memory");
        op->result = OPR_DB_ERROR;
        goto out;
    }
    if (rc < 0) {
        c->epoch++;
        cursor_plist_clear(c); /* child streams restart from the last complete parent */
        op->result = OPR_REFETCH;
        goto out;
    }
    op->nul_replaced = page.nul_replaced;
    n = page.nrecords;
    op->nrecords = n;
    if (job->child) {
        op_child_page_work(op, &page);
        goto observe;
    }
    if (def->api == KEAP_API_V1) {
        first = cursor_v1_first_new(c, def, job->overlap, pg->offset, page.records, n);
        if (first < 0) {
            cursor_v1_step_back(c, def->page_size, pg->offset);
            op->result = OPR_STEP_BACK;
            base_err_set(&op->err, 0, "records shifted before offset %" PRId64, pg->offset);
            goto out;
        }
    } else {
        first = 0;
    }

    base_buf_reset(&job->copy);
    if (job->sweeping) {
        struct base_buf ids;

        base_buf_init(&ids, SCHED_MAX_COPY);
        rc = cursor_ids_literal(def, page.records, NULL, &ids);
        if (rc < 0) {
            base_buf_free(&ids);
            base_err_set(&op->err, rc, "could not list the ids of a page of \"%s\": %s", def->name,
                         base_strerror(rc));
            op->result = OPR_DB_ERROR;
            goto out;
        }
        op->seen_ids = ids.data; /* the buffer's memory is the op's now */
    }
    if (job->sync) {
        struct base_buf ids;

        base_buf_init(&ids, SCHED_MAX_COPY);
        rc = cursor_ids_literal(def, page.records, "DELETED", &ids);
        if (rc < 0) {
            base_buf_free(&ids);
            base_err_set(&op->err, rc, "could not list the ids of a page of \"%s\": %s", def->name,
                         base_strerror(rc));
            op->result = OPR_DB_ERROR;
            goto out;
        }
        op->gone_ids = ids.data;
    }
    rec = page.records->child;
    for (int i = 0; i < first && rec != NULL; i++)
        rec = rec->next;
    /* A delete sweep stores no rows, only the ids it saw (or were reported deleted). */
    if (job->kind == SCHED_KIND_SWEEP)
        first = n;
    for (int i = first; i < n && rec != NULL; i++, rec = rec->next) {
        /* data is the record's text as received (page.spans), not a reprint */
        if (page.spans != NULL)
            rc = map_record_to_copy_raw(&def->map, rec, pg->body.data + page.spans[i].off,
                                        page.spans[i].len, &job->copy, &ms, &op->err);
        else
            rc = map_record_to_copy(&def->map, rec, &job->copy, &ms, &op->err);
        if (rc == BASE_EPROTO) {
            base_log_warning("job \"%s\": record %d at offset %" PRId64 " skipped: %s", def->name,
                             i, pg->offset, op->err.msg);
            base_err_clear(&op->err);
            skipped++; /* no row: the count committed with the page leaves it out */
            continue;
        }
        if (rc < 0) {
            op->result = OPR_DB_ERROR;
            if (op->err.msg[0] == '\0')
                base_err_set(&op->err, rc, "could not map page of \"%s\": %s", def->name,
                             base_strerror(rc));
            goto out;
        }
    }
    op->mismatches = ms.mismatches;

    /* The cursor after this page is committed with its rows; then the cursor moves on. */
    cursor_after_page(c, def, job->overlap, pg->offset, page.records, n, page.next_page_token,
                      pg->sent_wall, &next);
    op->seen_close = next.done;
    if (job->sync)
        cursor_sync_after_page(page.root, &next);
    rc = op_commit_rows(op, &next, n - first - skipped);
    if (rc < 0)
        goto out;
    if (job->sync) {
        memcpy(c->mark, next.mark, sizeof(c->mark));
        memcpy(c->since_mark, next.since_mark, sizeof(c->since_mark));
    }
    if (cursor_advance(c, &next) < 0)
        base_err_set(&op->err, BASE_ENOMEM, "out of memory"); /* committed all the same */
    op->result = OPR_COMMITTED;
observe:
    if (op->result == OPR_COMMITTED && pg->server_used >= 0 && op->tenant != NULL) {
        struct base_err e2;

        if (store_ledger_observe(op->s->store, op->tenant, pg->sent_wall, pg->server_used, &e2) < 0)
            base_log_warning("%s", e2.msg);
    }
    if (op->tenant_seen != NULL) {
        struct base_buf key;
        struct base_err e2;

        base_buf_init(&key, 4096);
        if (base_buf_printf(&key, "tenant:%s", op->s->opt->base_url) == 0 &&
            store_setting_put(op->s->store, key.data, op->tenant_seen, &e2) < 0)
            base_log_warning("%s", e2.msg);
        base_buf_free(&key);
    }
out:
    keap_page_free(&page);
    /* The body is no longer needed; free it here, off the loop. */
    base_buf_free(&pg->body);
}

static void op_reserve_work(struct sched_op *op)
{
    struct sched *s = op->s;
    int64_t total;

    op->granted = 0;
    if (op->carry > 0) {
        int64_t moved = 0;

        op->rc = store_ledger_reserve(s->store, op->tenant, op->day_wall, op->budget, op->carry,
                                      &moved, &total, &op->err);
        if (op->rc < 0)
            return;
        if (moved < op->carry) {
            /* Others already spent the rest of the day: nothing more for us. */
            return;
        }
    }
    for (int attempt = 1;;) {
        op->rc = store_ledger_reserve(s->store, op->tenant, op->day_wall, op->budget, op->want,
                                      &op->granted, &total, &op->err);
        if (op->rc == 0 || !sched_db_retry(s, &attempt, &op->err))
            break;
        base_err_clear(&op->err);
    }
    sched_oauth_reserve_more(op);
}

static void op_heartbeat_work(struct sched_op *op)
{
    struct sched *s = op->s;

    op->rc = store_peer_heartbeat(s->store, s->peer_group, s->holder, SCHED_PEER_TTL_MS,
                                  &op->npeers, &op->err);
    for (size_t i = 0; op->rc == 0 && i < s->njobs; i++) {
        bool held = true;
        char name[128];

        if (op->renew == NULL || !op->renew[i])
            continue;
        snprintf(name, sizeof(name), "job:%s", s->jobs[i].def->name);
        /* Renew only: a lease lost while this process was stopped stays lost. */
        op->rc =
            store_lease_renew(s->store, name, s->holder, sched_lease_ttl_ms(), &held, &op->err);
        if (op->rc == 0 && !held)
            op->lost[i] = true;
    }
}

static void op_free(struct sched_op *op)
{
    free(op->seen_ids);
    free(op->gone_ids);
    free(op->pids);
    free(op->renew);
    free(op->lost);
    free(op->tenant);
    free(op->tenant_seen);
    free(op);
}

static void op_start_next(struct sched *s)
{
    struct sched_op *op = s->ops_head;

    if (s->op_running || op == NULL)
        return;
    s->ops_head = op->next;
    if (s->ops_head == NULL)
        s->ops_tail = NULL;
    op->next = NULL;
    s->op_running = true;
    /* uv_queue_work only fails for a NULL work_cb. */
    uv_queue_work(&s->loop, &op->work, op_work_cb, op_after_work_cb);
}

static void op_page_done(struct sched *s, struct sched_op *op)
{
    struct sched_page *pg = op->page;
    struct sched_job *job = pg->job;

    job_unlink_page(job, pg);
    job->res->nul_replaced += op->nul_replaced;
    switch (op->result) {
    case OPR_COMMITTED:
        job->res->pages++;
        job->res->rows += op->pres.inserted + op->pres.updated;
        job->res->skipped += op->pres.skipped;
        job->res->deleted += op->pres.deleted;
        job->res->revived += op->pres.revived;
        job->res->mismatches += op->mismatches;
        job->failures = 0;
        if (pg->page_token != NULL)
            job->token_restarts = 0; /* a token worked: refusals are expiry, not a loop */
        if (job->child) {
            /* Parents fan out side by side: the pipeline opens fully after one commit. */
            job->depth = s->opt->max_depth;
            if (op->more)
                job_add_page(job, pg->parent_id, op->more_offset); /* NULL: the run stops */
        } else if (job->cur.done && job->kind == SCHED_KIND_BACKFILL &&
                   job->cur.watermark_ms < job->bf_to) {
            job_backfill_next(job); /* the next window of the range */
        } else if (job->cur.done) {
            job->end_known = true;
        } else if (op->nrecords >= job->def->page_size && job->depth < s->opt->max_depth) {
            job->depth++;
        }
        break;
    case OPR_DISCARDED:
        break;
    case OPR_STEP_BACK:
        base_log_info("job \"%s\": %s; stepping back to offset %" PRId64, job->def->name,
                      op->err.msg, job->cur.next_offset);
        job_resync(job);
        break;
    case OPR_REFETCH:
        job->failures++;
        base_log_warning("job \"%s\": could not parse page at offset %" PRId64 ": %s",
                         job->def->name, pg->offset, op->err.msg);
        if (job->failures >= s->opt->max_attempts) {
            char why[512];

            snprintf(why, sizeof(why),
                     "could not parse page at offset %" PRId64 " of \"%s\" after %d attempts: %s",
                     pg->offset, job->def->name, job->failures, op->err.msg);
            base_log_error("%s", why);
            job_set_state(job, SCHED_JOB_FAILED, why);
        } else {
            job_resync(job);
        }
        break;
    case OPR_DB_ERROR:
        if (!op_nomem(op))
            job_set_state(job, SCHED_JOB_FAILED, op->err.msg);
        break;
    }
    page_free(pg);
    job_check_done(job);
}

static void op_reserve_done(struct sched *s, struct sched_op *op)
{
    s->reserving = false;
    if (op->rc < 0 && op_nomem(op))
        return;
    if (op->rc < 0) {
        base_log_error("%s", op->err.msg);
        for (size_t i = 0; i < s->njobs; i++)
            if (!job_terminal(&s->jobs[i]))
                job_set_state(&s->jobs[i], SCHED_JOB_FAILED, op->err.msg);
        return;
    }
    if (s->tenant == NULL || strcmp(op->tenant, s->tenant) != 0) {
        /* The tenant became known while this ran: move these tokens along with the rest. */
        s->carry += op->granted;
    }
    if (op->granted == 0) {
        s->ledger_exhausted = true;
        base_log_info("the ledger has no requests left for tenant \"%s\" today", op->tenant);
        return;
    }
    s->grant_day = base_time_day_start(op->day_wall);
    pace_grant(s->pace, op->day_wall, op->granted);
}

static void op_heartbeat_done(struct sched *s, struct sched_op *op)
{
    s->heartbeat_queued = false;
    for (size_t i = 0; op->lost != NULL && i < s->njobs; i++) {
        struct sched_job *job = &s->jobs[i];
        char why[256];

        if (!op->lost[i])
            continue;
        if (job_terminal(job))
            continue;
        snprintf(why, sizeof(why),
                 "job \"%s\": lost its lease to another keapsync process (it expired while "
                 "this one was stopped); stopping without committing",
                 job->def->name);
        base_log_error("%s", why);
        job_set_state(job, SCHED_JOB_FAILED, why);
    }
    if (op->rc < 0) {
        base_log_warning("%s", op->err.msg);
        return;
    }
    if (op->npeers != s->npeers) {
        base_log_info("%d keapsync process%s share this key", op->npeers,
                      op->npeers == 1 ? "" : "es");
        s->npeers = op->npeers;
        pace_set_share(s->pace, op->npeers);
    }
}

/*
 * What each kind of operation does, one entry per kind: work runs on the thread pool, done
 * runs on the loop thread after it and applies the result.
 */
static const struct {
    void (*work)(struct sched_op *op);
    void (*done)(struct sched *s, struct sched_op *op);
} op_kinds[OP_NKINDS] = {
    [OP_PAGE] = {op_page_work, op_page_done},
    [OP_RESERVE] = {op_reserve_work, op_reserve_done},
    [OP_HEARTBEAT] = {op_heartbeat_work, op_heartbeat_done},
    [OP_PARENTS] = {op_parents_work, op_parents_done},
    [OP_CLOSE] = {op_close_work, op_close_done},
    [OP_REFRESH] = {sched_oauth_refresh_work, sched_oauth_refresh_done},
};

static void op_work_cb(uv_work_t *w)
{
    struct sched_op *op = container_of(w, struct sched_op, work);

    op_kinds[op->kind].work(op);
}

static void op_after_work_cb(uv_work_t *w, int status)
{
    struct sched_op *op = container_of(w, struct sched_op, work);
    struct sched *s = op->s;

    (void)status;
    s->op_running = false;
    if (op_nomem(op))
        sched_nomem(s, "running a database operation");
    op_kinds[op->kind].done(s, op);
    op_free(op);
    op_start_next(s);
    sched_pump(s);
}

void op_submit(struct sched *s, struct sched_op *op)
{
    op->s = s;
    if (s->ops_tail)
        s->ops_tail->next = op;
    else
        s->ops_head = op;
    s->ops_tail = op;
    op_start_next(s);
}
