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
    c->plist_n++;
    return &c->plist[i];
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
    if (n < def->page_size) {
        par->complete = true;
    } else {
        op->more = true;
        op->more_offset = pg->offset + n;
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
    if (rc == 0)
        op->result = OPR_COMMITTED;
}

void op_parents_work(struct sched_op *op)
{
    struct sched_job *job = op->job;

    op->pids = malloc(SCHED_PARENT_BATCH * sizeof(*op->pids));
    if (op->pids == NULL) {
        op->rc = base_err_set(&op->err, BASE_ENOMEM, "out of memory");
        return;
    }
    op->rc = store_parent_ids(op->s->store, job->def->parent_table, job->have_after, job->after,
                              SCHED_PARENT_BATCH, op->pids, &op->pn, &op->err);
}

void op_close_work(struct sched_op *op)
{
    struct sched_job *job = op->job;
    struct sched_cursor closed = job->cur;
    struct base_buf ckpt;

    base_buf_init(&ckpt, 4096);
    closed.in_window = false;
    closed.completed_ms = base_clock_wall_ms(op->s->clock);
    op->rc = cursor_checkpoint(&closed, &ckpt);
    if (op->rc == 0)
        op->rc = store_checkpoint_save(op->s->store, job->def->name, ckpt.data, &op->err);
    else
        base_err_set(&op->err, op->rc, "could not build the checkpoint of \"%s\"", job->def->name);
    base_buf_free(&ckpt);
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
    if (op->rc < 0) {
        if (!op_nomem(op))
            job_set_state(job, SCHED_JOB_FAILED, op->err.msg);
        return;
    }
    job->end_known = true;
    job_check_done(job);
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
