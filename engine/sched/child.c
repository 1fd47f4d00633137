/*
 * child.c: child streams, a job that lists the records of each row of its parent's table
 * (e.g. a contact's emails). The loop reads the parents' ids in batches (OP_PARENTS) and fans
 * out one page per parent; the worker tracks which parents are complete (the cursor's plist
 * and done_through) and closes the window when the last one is (OP_CLOSE).
 */
#include "sched_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* The parent's entry in the worker's list of begun parents, added (in id order) if new. */
static struct sched_parent *cursor_parent(struct sched_cursor *c, int64_t id)
{
    int i;

    for (i = 0; i < c->plist_n; i++)
        if (c->plist[i].id == id)
            return &c->plist[i];
    if (c->plist_n == c->plist_cap) {
        int ncap = c->plist_cap ? c->plist_cap * 2 : 16;
        struct sched_parent *np = realloc(c->plist, (size_t)ncap * sizeof(*np));

        if (np == NULL)
            return NULL;
        c->plist = np;
        c->plist_cap = ncap;
    }
    for (i = c->plist_n; i > 0 && c->plist[i - 1].id > id; i--)
        c->plist[i] = c->plist[i - 1];
    c->plist[i].id = id;
    c->plist[i].complete = false;
    c->plist[i].keep = NULL;
    c->plist[i].keep_len = 0;
    c->plist_n++;
    return &c->plist[i];
}

#define CHILD_MAX_KEEP  (4u * 1024 * 1024)
#define CHILD_KEEP_LOST ((size_t)-1) /* the ids did not fit: this parent is not swept */

/* Adds the ids of a page's records to the parent's keep list (a text[] literal). */
static int parent_keep_ids(struct sched_parent *par, const struct jobs_job *def,
                           const cJSON *records)
{
    struct base_buf b;
    int rc = 0;

    if (par->keep_len == CHILD_KEEP_LOST)
        return 0;
    base_buf_init(&b, CHILD_MAX_KEEP);
    if (par->keep != NULL && par->keep_len > 2)
        rc = base_buf_append(&b, par->keep, par->keep_len - 1); /* without the closing } */
    else
        rc = base_buf_puts(&b, "{");
    for (const cJSON *rec = records->child; rc == 0 && rec != NULL; rec = rec->next) {
        char id[128];

        if (map_record_id(&def->map, rec, id, sizeof(id)) != 0)
            continue; /* such a record was skipped, not stored */
        rc = base_buf_puts(&b, b.len > 1 ? ",\"" : "\"");
        for (const char *p = id; rc == 0 && *p; p++)
            rc = base_buf_printf(&b, "%s%c", (*p == '"' || *p == '\\') ? "\\" : "", *p);
        if (rc == 0)
            rc = base_buf_puts(&b, "\"");
    }
    if (rc == 0)
        rc = base_buf_puts(&b, "}");
    if (rc == BASE_ETOOBIG) {
        base_log_warning("job \"%s\": parent has too many records to tell which are gone; its "
                         "rows are not marked deleted this pass",
                         def->name);
        base_buf_free(&b);
        free(par->keep);
        par->keep = NULL;
        par->keep_len = CHILD_KEEP_LOST;
        return 0;
    }
    if (rc < 0) {
        base_buf_free(&b);
        return rc;
    }
    free(par->keep);
    par->keep = b.data; /* the buffer's memory is ours now */
    par->keep_len = b.len;
    return 0;
}

/*
 * A child stream's page: its records are rows of parent pg->parent_id. The checkpoint says
 * which parents are complete (all up to done_through); a parent whose list is longer than a
 * page asks the loop for its next page (op->more).
 */
void op_child_page_work(struct sched_op *op, struct keap_page *page)
{
    struct sched_page *pg = op->page;
    struct sched_job *job = pg->job;
    const struct jobs_job *def = job->def;
    struct sched_cursor *c = &job->cur;
    struct sched_parent *par;
    struct map_stats ms = {0};
    bool have_done = c->have_done;
    int64_t done_through = c->done_through;
    char *keep = NULL;
    int n = page->nrecords, k = 0, rc;

    base_buf_reset(&job->copy);
    const cJSON *rec = page->records->child;

    for (int i = 0; i < n && rec != NULL; i++, rec = rec->next) {
        size_t mark = job->copy.len;

        rc = base_buf_printf(&job->copy, "%" PRId64 "\t", pg->parent_id);
        if (rc == 0 && page->spans != NULL)
            rc = map_record_to_copy_raw(&def->map, rec, pg->body.data + page->spans[i].off,
                                        page->spans[i].len, &job->copy, &ms, &op->err);
        else if (rc == 0)
            rc = map_record_to_copy(&def->map, rec, &job->copy, &ms, &op->err);
        if (rc == BASE_EPROTO) {
            base_log_warning("job \"%s\": record %d of parent %" PRId64 " skipped: %s", def->name,
                             i, pg->parent_id, op->err.msg);
            base_err_clear(&op->err);
            job->copy.len = mark;
            job->copy.data[mark] = '\0';
            continue;
        }
        if (rc < 0) {
            op->result = OPR_DB_ERROR;
            if (op->err.msg[0] == '\0')
                base_err_set(&op->err, rc, "could not map page of \"%s\": %s", def->name,
                             base_strerror(rc));
            return;
        }
        k++;
    }
    op->mismatches = ms.mismatches;
    par = cursor_parent(c, pg->parent_id);
    if (par == NULL) {
        op->result = OPR_DB_ERROR;
        base_err_set(&op->err, BASE_ENOMEM, "out of memory");
        return;
    }
    if (pg->gone) {
        /* Keap no longer has the parent: none of its rows is listed any more. */
        free(par->keep);
        par->keep = NULL;
        par->keep_len = 0;
    }
    if (n < def->page_size) {
        /* The parent's list ends here: its rows that no page listed are gone from Keap. */
        par->complete = true;
        keep = par->keep;
        par->keep = NULL;
        op->sweep = par->keep_len != CHILD_KEEP_LOST;
        op->sweep_keep = keep;
    } else {
        op->more = true;
        op->more_offset = pg->offset + n;
        rc = parent_keep_ids(par, def, page->records);
        if (rc < 0) {
            op->result = OPR_DB_ERROR;
            base_err_set(&op->err, rc, "out of memory");
            return;
        }
    }
    /* Complete parents at the head of the list are done for good. */
    {
        int drop = 0;

        while (drop < c->plist_n && c->plist[drop].complete) {
            have_done = true;
            done_through = c->plist[drop].id;
            drop++;
        }
        c->have_done = have_done;
        c->done_through = done_through;
        memmove(c->plist, c->plist + drop, (size_t)(c->plist_n - drop) * sizeof(*c->plist));
        c->plist_n -= drop;
    }
    rc = op_commit_rows(op, c, k);
    free(keep);
    op->sweep_keep = NULL;
    if (rc == 0)
        op->result = OPR_COMMITTED;
}

void op_parents_work(struct sched_op *op)
{
    struct sched_job *job = op->job;
    struct sched_cursor *c = &job->cur;

    if (c->mark[0] == '\0') {
        /* The pass's fan-out starts now: it covers every parent row written up to the mark.
         * A parent job running in this run is done and leased to us, so nothing writes its
         * table now; otherwise another process might be committing rows stamped a little
         * before the mark, and the mark is taken a minute early. */
        op->rc = store_parent_mark(op->s->store, job->def->parent_table, op->parent_here ? 0 : 60,
                                   c->mark, sizeof(c->mark), &op->err);
        if (op->rc < 0)
            return;
        c->parent_complete = op->parent_complete ? 1 : 0;
    }
    op->pids = malloc(SCHED_PARENT_BATCH * sizeof(*op->pids));
    if (op->pids == NULL) {
        op->rc = base_err_set(&op->err, BASE_ENOMEM, "out of memory");
        return;
    }
    op->rc = store_parent_ids(op->s->store, job->def->parent_table, job->have_after, job->after,
                              c->since_mark[0] ? c->since_mark : NULL, SCHED_PARENT_BATCH, op->pids,
                              &op->pn, &op->err);
}

/*
 * Every parent of the pass is done: the next pass reads the parents written after this
 * one's mark. A pass that began over a complete parent closes (it counts as complete for
 * refresh_hours). One that began before the parent had completed a pass did not see the
 * whole parent: when the parent is complete now, the next pass opens at once (op->more);
 * when it is still incomplete the pass stays open and nothing is saved (the checkpoint
 * already holds its position), so the next run carries on from there.
 */
void op_close_work(struct sched_op *op)
{
    struct sched_job *job = op->job;
    struct sched_cursor *c = &job->cur;
    struct sched_cursor next = *c;
    struct base_buf ckpt;

    op->more = false;
    if (c->parent_complete <= 0 && !op->parent_complete) {
        op->rc = 0;
        return;
    }
    snprintf(next.since_mark, sizeof(next.since_mark), "%s", c->mark);
    if (c->parent_complete <= 0) {
        next.plist_n = 0; /* the copy shares c's plist, which holds no begun parent now */
        cursor_open_pass(&next);
        op->more = true;
    } else {
        next.in_window = false;
        next.completed_ms = base_clock_wall_ms(op->s->clock);
    }
    base_buf_init(&ckpt, 4096);
    op->rc = cursor_checkpoint(&next, &ckpt);
    if (op->rc == 0)
        op->rc = store_checkpoint_save(op->s->store, job->def->name, ckpt.data, &op->err);
    else
        base_err_set(&op->err, op->rc, "could not build the checkpoint of \"%s\"", job->def->name);
    base_buf_free(&ckpt);
    if (op->rc < 0)
        return;
    c->in_window = next.in_window;
    c->completed_ms = next.completed_ms;
    c->have_done = next.have_done;
    c->done_through = next.done_through;
    memcpy(c->since_mark, next.since_mark, sizeof(c->since_mark));
    memcpy(c->mark, next.mark, sizeof(c->mark));
    c->parent_complete = next.parent_complete;
}

void op_parents_done(struct sched *s, struct sched_op *op)
{
    struct sched_job *job = op->job;

    (void)s;
    job->fetching_parents = false;
    if (op->rc < 0) {
        if (!op_nomem(op))
            job_set_state(job, SCHED_JOB_FAILED, op->err.msg);
        return;
    }
    free(job->pids);
    job->pids = op->pids;
    op->pids = NULL;
    job->pn = op->pn;
    job->ppos = 0;
    if (op->pn > 0) {
        job->have_after = true;
        job->after = job->pids[op->pn - 1];
    }
    if (op->pn < SCHED_PARENT_BATCH)
        job->parents_exhausted = true;
    job_check_done(job);
}

void op_close_done(struct sched *s, struct sched_op *op)
{
    struct sched_job *job = op->job;

    (void)s;
    job->closing_window = false;
    if (op->rc < 0) {
        if (!op_nomem(op))
            job_set_state(job, SCHED_JOB_FAILED, op->err.msg);
        return;
    }
    if (job->cur.in_window && !op->more) {
        char why[512];

        snprintf(why, sizeof(why),
                 "its parent job \"%s\" has not completed a pass yet, so this pass over the "
                 "parents so far stays open; run \"%s\" to let it complete",
                 job->def->parent_job, job->def->parent_job);
        base_log_warning("job \"%s\": %s", job->def->name, why);
        snprintf(job->res->error, sizeof(job->res->error), "%s", why);
        job_set_state(job, SCHED_JOB_STOPPED, NULL);
        return;
    }
    if (op->more) {
        base_log_info("job \"%s\": its parent completed during this pass; reading the parents "
                      "written since the pass began",
                      job->def->name);
        job->pn = 0;
        job->ppos = 0;
        job->have_after = false;
        job->parents_exhausted = false;
        job_check_done(job);
        return;
    }
    job->end_known = true;
    job_check_done(job);
}

/* Has the parent job completed a pass, so that its table holds every parent? */
bool child_parent_complete(const struct sched_job *job)
{
    if (job->parent != NULL)
        return job->parent->state == SCHED_JOB_DONE || job->parent->cur.completed_ms >= 0;
    return job->parent_completed;
}

void job_fetch_parents(struct sched_job *job)
{
    if (job->fetching_parents || job->parents_exhausted)
        return;
    job->fetching_parents = job_submit_op(job, OP_PARENTS);
}

/* Links each child stream to its parent's job when both run now. */
void sched_link_parents(struct sched *s)
{
    for (size_t i = 0; i < s->njobs; i++) {
        struct sched_job *job = &s->jobs[i];

        for (size_t j = 0; job->child && j < s->njobs; j++)
            if (strcmp(s->jobs[j].def->name, job->def->parent_job) == 0)
                job->parent = &s->jobs[j];
    }
}
