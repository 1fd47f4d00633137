/*
 * run.c: sched_run: sets up a run (pace, http, the ledger's tenant, every job's cursor, the
 * peer group and the job leases), runs the loop, and tears it all down.
 */
#include "sched_int.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Does the checkpoint of def's parent job show a completed pass? */
static int sched_parent_completed(struct sched *s, const struct jobs_job *def, bool *done,
                                  struct base_err *err)
{
    struct sched_cursor pc = {0};
    char *ckpt = NULL;
    int rc;

    *done = false;
    rc = store_checkpoint_load(s->store, def->parent_job, &ckpt, err);
    if (rc == 0 && ckpt != NULL) {
        rc = cursor_load(&pc, ckpt, def, err);
        if (rc == 0)
            *done = pc.completed_ms >= 0;
    }
    free(ckpt);
    free(pc.page_token);
    return rc;
}

int sched_setup_job(struct sched *s, struct sched_job *job, const struct jobs_job *def,
                    int64_t from, struct base_err *err)
{
    int64_t wall = now_wall(s);
    char *ckpt = NULL;
    bool was_in_window;
    int rc;

    job->s = s;
    job->def = def;
    job->res->name = def->name;
    job->depth = 1;
    /* Drift-proof paging needs ids in order. KEAPSYNC_PAGING=naive turns it off: plain
     * offsets, as most tools page; only for comparing the two in tests and benchmarks. */
    job->overlap =
        def->api == KEAP_API_V1 && def->order && strcmp(def->order, "id") == 0 && !s->naive;
    base_buf_init(&job->copy, SCHED_MAX_COPY);
    job->table.table = def->table;
    /* a sweep or a backfill writes its job's table, prepared for its job's map */
    job->table.map = job->origin ? &job->origin->map : &def->map;
    job->table.updated_col = def->updated_field;
    job->table.parent_col = def->parent_col;
    job->child = def->parent_job != NULL;
    if (job->child)
        job->kind = SCHED_KIND_CHILD;
    if (job->origin == NULL) {
        rc = store_ensure_table(s->store, &job->table, err);
        if (rc < 0)
            return rc;
    }
    rc = store_checkpoint_load(s->store, def->name, &ckpt, err);
    if (rc < 0)
        return rc;
    rc = cursor_load(&job->cur, ckpt, def, err);
    free(ckpt);
    if (rc < 0)
        return rc;
    if (cursor_fresh(&job->cur, def, s->clock)) {
        /* Read in full less than refresh_hours ago: nothing to do this run. */
        base_log_info("job \"%s\": fresh, its last complete pass was %" PRId64
                      " min ago (refresh_hours %d); skipped",
                      def->name, (wall - job->cur.completed_ms) / 60000, def->refresh_hours);
        job_set_state(job, SCHED_JOB_DONE, NULL);
        return 0;
    }
    was_in_window = job->cur.in_window;
    if (job->kind == SCHED_KIND_BACKFILL)
        job_backfill_first(job, from);
    else
        cursor_open_window(&job->cur, def, s->clock);
    job->opened = !was_in_window; /* its sweep begins once the job's lease is ours */
    job->epoch = job->cur.epoch;
    job->next_offset = job->cur.next_offset;
    if (job->child) {
        rc = sched_parent_completed(s, def, &job->parent_completed, err);
        if (rc < 0)
            return rc;
        job->have_after = job->cur.have_done;
        job->after = job->cur.done_through;
        if (job->cur.have_done)
            base_log_info("job \"%s\": resuming after parent %" PRId64, def->name,
                          job->cur.done_through);
    }
    if (job->cur.in_window && job->cur.next_offset > 0)
        base_log_info("job \"%s\": resuming at offset %" PRId64, def->name, job->cur.next_offset);
    return 0;
}

static int sched_setup_jobs(struct sched *s, struct jobs_set *set, struct sched_result *res,
                            struct base_err *err)
{
    size_t extra = 0;
    int rc = sched_count_extras(s, set, &extra, err);

    if (rc < 0)
        return rc;
    s->jobs = calloc(set->n + extra, sizeof(*s->jobs));
    res->jobs = calloc(set->n + extra, sizeof(*res->jobs));
    if (s->jobs == NULL || res->jobs == NULL)
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    s->njobs = set->n;
    res->njobs = set->n;
    for (size_t i = 0; i < set->n; i++) {
        s->jobs[i].res = &res->jobs[i];
        rc = sched_setup_job(s, &s->jobs[i], &set->jobs[i], 0, err);
        if (rc < 0)
            return rc;
    }
    return sched_setup_extras(s, set, res, err);
}

static int sched_setup_tenant(struct sched *s, struct base_err *err)
{
    struct base_buf key;
    char *cached = NULL;
    int rc;

    if (s->opt->tenant != NULL) {
        s->tenant = strdup(s->opt->tenant);
        return s->tenant ? 0 : base_err_set(err, BASE_ENOMEM, "out of memory");
    }
    base_buf_init(&key, 4096);
    rc = base_buf_printf(&key, "tenant:%s", s->opt->base_url);
    if (rc == 0)
        rc = store_setting_get(s->store, key.data, &cached, err);
    base_buf_free(&key);
    if (rc < 0)
        return rc;
    if (cached != NULL) {
        s->tenant = cached;
        return 0;
    }
    /* Unknown until the first response names it: charge the API root meanwhile. */
    s->tenant = strdup(s->opt->base_url);
    s->tenant_provisional = true;
    return s->tenant ? 0 : base_err_set(err, BASE_ENOMEM, "out of memory");
}

/*
 * The peer group: processes that share one key's per-second and per-minute windows, so the
 * API root and keap's identifier of the credential.
 */
static int sched_peer_group(struct sched *s, const struct keap_credential *cred,
                            struct base_err *err)
{
    char id[KEAP_CREDENTIAL_ID_LEN + 1];
    /* OAuth2: the access token rotates, the client id stays. */
    struct keap_credential by_client = {.api_key =
                                            s->opt->oauth ? s->opt->oauth->client->id : NULL};
    int rc = keap_credential_id(s->opt->oauth ? &by_client : cred, id, sizeof(id));

    if (rc < 0)
        return base_err_set(err, rc, "could not identify the credential: %s", base_strerror(rc));
    snprintf(s->peer_group, sizeof(s->peer_group), "%s#%s", s->opt->base_url, id);
    return 0;
}

/*
 * Is holder ("host:pid:nonce") a process of this host that no longer exists? Such a holder
 * was killed (SIGKILL, a crash) and never released what it held.
 */
static bool holder_is_dead(const struct sched *s, const char *holder)
{
    const char *colon = strchr(s->holder, ':'), *p;
    size_t hostlen = colon ? (size_t)(colon - s->holder) + 1 : 0;
    char pidbuf[24];
    int64_t pid;
    size_t n;

    if (hostlen == 0 || strncmp(holder, s->holder, hostlen) != 0)
        return false; /* another host: cannot tell, wait for the lease to expire */
    p = holder + hostlen;
    n = strcspn(p, ":");
    if (n == 0 || n >= sizeof(pidbuf))
        return false;
    memcpy(pidbuf, p, n);
    pidbuf[n] = '\0';
    if (base_parse_int64(pidbuf, &pid) < 0 || pid <= 0 || pid == (int64_t)getpid())
        return false;
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Releases the leases (peer entries, job leases) of dead processes of this host. */
static void sched_reap_dead(struct sched *s, const char *prefix)
{
    char **names = NULL, **holders = NULL;
    struct base_err e2;
    int n = 0;

    if (store_lease_list(s->store, prefix, &names, &holders, &n, &e2) < 0) {
        base_log_warning("%s", e2.msg);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (!holder_is_dead(s, holders[i]))
            continue;
        base_log_info("releasing \"%s\" held by %s, a keapsync process that no longer exists",
                      names[i], holders[i]);
        if (store_lease_release(s->store, names[i], holders[i], &e2) < 0)
            base_log_warning("%s", e2.msg);
    }
    store_lease_list_free(names, holders);
}

/*
 * Joins the tenant's live processes (they split the key's windows) and takes each job's
 * lease: a job another live process is running is not run twice; this run skips it (state
 * skipped, one info line; not a failure). Leases left by dead processes of this host are
 * released first, so a lease a live holder has is a peer's: the peer runs that job.
 */
/* The holder's name, the dead processes' leases reaped, and our entry in the peer group. */
static int sched_setup_peers(struct sched *s, struct base_err *err)
{
    char host[64] = "host";
    int rc;

    gethostname(host, sizeof(host) - 1);
    snprintf(s->holder, sizeof(s->holder), "%s:%ld:%08x", host, (long)getpid(), (unsigned)rand());
    sched_reap_dead(s, "job:");
    sched_reap_dead(s, "peer:");
    rc = store_peer_heartbeat(s->store, s->peer_group, s->holder, SCHED_PEER_TTL_MS, &s->npeers,
                              err);
    if (rc < 0)
        return rc;
    if (s->npeers > 1) {
        base_log_info("%d keapsync processes share this key", s->npeers);
        pace_set_share(s->pace, s->npeers);
        /* The others learn of us at their next heartbeat; until then they still use the
         * whole key. */
        s->join_until = now_mono(s) + SCHED_HEARTBEAT_MS + 500;
    }
    return 0;
}

/* Takes the lease "job:<name>": *got, and in why the reason when another process holds it. */
static int sched_take_lease(struct sched *s, const char *job, bool *got, char *why, size_t n,
                            struct base_err *err)
{
    char name[128];
    char *other = NULL;
    int rc;

    snprintf(name, sizeof(name), "job:%s", job);
    rc = store_lease_acquire(s->store, name, s->holder, sched_lease_ttl_ms(), got, &other, err);
    if (rc == 0 && !*got)
        snprintf(why, n,
                 "job \"%s\" is being run by another keapsync process (%s); skipped by this "
                 "run",
                 job, other ? other : "unknown");
    free(other);
    return rc;
}

/* Hands back the lease "job:<name>"; a failure is logged (the lease expires anyway). */
static int sched_give_lease(struct sched *s, const char *job)
{
    char name[128];
    struct base_err e2;

    snprintf(name, sizeof(name), "job:%s", job);
    if (store_lease_release(s->store, name, s->holder, &e2) < 0) {
        base_log_warning("%s", e2.msg);
        return -1;
    }
    return 0;
}

/*
 * The jobs of the set take their leases before their checkpoints are read (sched_setup_jobs),
 * so that a job another process completes meanwhile is seen completed, not run again.
 * got[i]: job i's lease is ours; why[i]: who has it otherwise. Each process begins at a job of
 * its own (by pid), so that processes started together split the set rather than one taking
 * every lease before the other asks.
 */
static int sched_lease_set(struct sched *s, const struct jobs_set *set, bool *got, char (*why)[512],
                           struct base_err *err)
{
    size_t first = set->n ? (size_t)getpid() % set->n : 0;

    for (size_t k = 0; k < set->n; k++) {
        size_t i = (first + k) % set->n;
        int rc = sched_take_lease(s, set->jobs[i].name, &got[i], why[i], sizeof(why[i]), err);

        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Is derived job name ("main#...") one of a main job of the set this run skips? */
static bool main_skipped(const struct jobs_set *set, const bool *got, const char *name)
{
    size_t n = strcspn(name, "#");

    if (name[n] != '#')
        return false;
    for (size_t i = 0; i < set->n; i++)
        if (!got[i] && strncmp(set->jobs[i].name, name, n) == 0 && set->jobs[i].name[n] == '\0')
            return true;
    return false;
}

/*
 * After set-up: the set's jobs take what sched_lease_set got, the derived jobs their own (a
 * derived job of a skipped main job is skipped with it: its peer runs both).
 */
static int sched_setup_leases(struct sched *s, const struct jobs_set *set, const bool *got,
                              char (*why)[512], struct base_err *err)
{
    size_t nset = set->n;

    for (size_t i = 0; i < s->njobs; i++) {
        struct sched_job *job = &s->jobs[i];
        char other[512];
        bool mine = false;
        int rc;

        if (i < nset) {
            mine = got[i];
            snprintf(other, sizeof(other), "%s", why[i]);
        } else if (!job_terminal(job) && main_skipped(set, got, job->def->name)) {
            snprintf(other, sizeof(other),
                     "job \"%s\": its main job is run by another keapsync "
                     "process; skipped by this run",
                     job->def->name);
        } else if (!job_terminal(job)) {
            rc = sched_take_lease(s, job->def->name, &mine, other, sizeof(other), err);
            if (rc < 0)
                return rc;
        }
        job->holds_lease = mine;
        if (job_terminal(job)) {
            /* fresh: nothing to run, nothing to hold */
            if (mine && sched_give_lease(s, job->def->name) == 0)
                job->holds_lease = false;
            continue;
        }
        if (!mine) {
            base_log_info("%s", other);
            job_set_state(job, SCHED_JOB_SKIPPED, other);
        }
    }
    return 0;
}

static void sched_release_leases(struct sched *s)
{
    struct base_err e2;

    for (size_t i = 0; i < s->njobs; i++) {
        char name[128];

        if (!s->jobs[i].holds_lease)
            continue; /* another process runs it, or it was fresh */
        snprintf(name, sizeof(name), "job:%s", s->jobs[i].def->name);
        if (store_lease_release(s->store, name, s->holder, &e2) < 0)
            base_log_warning("%s", e2.msg);
    }
    if (s->holder[0] != '\0' && store_peer_leave(s->store, s->peer_group, s->holder, &e2) < 0)
        base_log_warning("%s", e2.msg);
}

static void walk_close_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int sched_run(const struct sched_options *opt_in, struct jobs_set *set, struct store *store,
              const struct keap_credential *cred, struct sched_result *res, struct base_err *err)
{
    struct sched_options opt = *opt_in;
    struct http_options hopt = {0};
    char(*why)[512] = NULL;
    bool *got = NULL;
    struct sched *s;
    int rc;

    memset(res, 0, sizeof(*res));
    if (opt.max_depth <= 0)
        opt.max_depth = SCHED_DEFAULT_DEPTH;
    if (opt.max_attempts <= 0)
        opt.max_attempts = SCHED_DEFAULT_ATTEMPTS;
    if (opt.clock == NULL)
        opt.clock = base_clock_system();
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    s->opt = &opt;
    s->clock = opt.clock;
    s->store = store;
    s->started_mono = now_mono(s);
    {
        const char *paging = getenv("KEAPSYNC_PAGING");

        s->naive = paging != NULL && strcmp(paging, "naive") == 0;
        if (s->naive)
            base_log_warning("KEAPSYNC_PAGING=naive: offset paging without drift checks; records "
                             "may be missed");
    }
    {
        double keep = 1.0 - opt.limits.reserve_fraction;

        s->budget =
            opt.limits.per_day > 0 ? (int64_t)((double)opt.limits.per_day * keep) : INT64_MAX / 4;
    }
    rc = uv_loop_init(&s->loop);
    if (rc < 0) {
        free(s);
        return base_err_set(err, BASE_EIO, "could not start the event loop: %s", uv_strerror(rc));
    }
    rc = pace_new(&s->pace, &opt.limits);
    if (rc < 0) {
        base_err_set(err, rc, "could not set up pacing: %s", base_strerror(rc));
        goto out_loop;
    }
    /* Processes sharing a key must not retry in step. */
    pace_set_seed(s->pace, (uint64_t)getpid() * 2654435761u ^ (uint64_t)now_wall(s));
    srand((unsigned)getpid() ^ (unsigned)now_wall(s));
    if (opt.oauth != NULL) {
        s->tok.gen = opt.oauth->generation;
        s->tok.obtained_ms = opt.oauth->obtained_ms;
        s->tok.expires_ms = opt.oauth->expires_ms;
    }
    rc = keap_auth_headers(cred, &s->auth_headers);
    if (rc < 0) {
        base_err_set(err, rc, "could not build request headers: %s", base_strerror(rc));
        goto out_loop;
    }
    rc = sched_peer_group(s, cred, err);
    if (rc < 0)
        goto out_loop;
    hopt.max_body = SCHED_MAX_BODY;
    hopt.max_connections = opt.max_depth * (int)(set->n < 4 ? set->n : 4) + 2;
    rc = http_client_new(&s->http, &s->loop, &hopt);
    if (rc < 0) {
        base_err_set(err, rc, "could not set up HTTP: %s", base_strerror(rc));
        goto out_loop;
    }
    got = calloc(set->n ? set->n : 1, sizeof(*got));
    why = calloc(set->n ? set->n : 1, sizeof(*why));
    rc = got == NULL || why == NULL ? base_err_set(err, BASE_ENOMEM, "out of memory") : 0;
    if (rc == 0)
        rc = sched_setup_tenant(s, err);
    if (rc == 0)
        rc = sched_setup_peers(s, err);
    if (rc == 0)
        rc = sched_lease_set(s, set, got, why, err);
    if (rc == 0)
        rc = sched_setup_jobs(s, set, res, err);
    if (rc == 0)
        rc = sched_setup_leases(s, set, got, why, err);
    for (size_t i = 0; rc < 0 && got != NULL && i < set->n; i++)
        if (got[i])
            sched_give_lease(s, set->jobs[i].name); /* the run does not start */
    free(got);
    free(why);
    /* Only the process that runs a job may begin its sweep (which forgets the ids seen). */
    for (size_t i = 0; rc == 0 && i < s->njobs; i++)
        if (s->jobs[i].holds_lease)
            rc = sched_begin_sweep(s, &s->jobs[i], !s->jobs[i].opened, err);
    sched_link_parents(s);
    if (rc < 0)
        goto out_http;
    sched_loop_run(s);

    /* Hand back what the ledger reserved and we did not send. */
    {
        int64_t unspent = pace_unspent(s->pace);
        struct base_err e2;

        if (unspent > 0 && s->tenant != NULL &&
            store_ledger_release(store, s->tenant, now_wall(s), unspent, &e2) < 0)
            base_log_warning("%s", e2.msg);
        sched_oauth_release_more(s, unspent);
    }

    sched_release_leases(s);
    sched_result_fill(s, res);
    rc = 0;
    goto out_jobs;

out_http:
    http_client_close(s->http);
    s->http = NULL;
out_jobs:
    uv_walk(&s->loop, walk_close_cb, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < s->njobs; i++) {
        base_buf_free(&s->jobs[i].copy);
        free(s->jobs[i].keep_names);
        free(s->jobs[i].cur.page_token);
        cursor_plist_clear(&s->jobs[i].cur);
        free(s->jobs[i].cur.plist);
        free(s->jobs[i].pids);
        job_drop_pages(&s->jobs[i]);
        sched_extra_free(&s->jobs[i]);
    }
    free(s->jobs);
out_loop:
    if (uv_loop_close(&s->loop) != 0)
        base_log_warning("event loop closed with handles still open");
    keap_headers_free(s->auth_headers);
    pace_free(s->pace);
    free(s->tenant);
    free(s);
    return rc;
}
