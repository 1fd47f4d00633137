/*
 * cursor.c: where a job's window stands (struct sched_cursor): opening a window from the
 * watermark, the drift check of v1 offset paging, and the checkpoint's JSON text.
 *
 * Drift-proof v1 offset paging: every page after the first overlaps the previous one by one
 * record, and a page that does not start with the last committed id shows that records
 * shifted, so the cursor steps back and the epoch moves on.
 */
#include "sched_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int cursor_checkpoint(const struct sched_cursor *c, struct base_buf *out)
{
    int rc = base_buf_printf(out, "{\"v\":1,\"watermark_ms\":%" PRId64 ",\"completed_ms\":%" PRId64,
                             c->watermark_ms, c->completed_ms);

    if (rc == 0 && c->since_mark[0] != '\0')
        rc = base_buf_printf(out, ",\"parent_mark\":\"%s\"", c->since_mark);
    if (rc == 0 && c->last_span_ms > 0)
        rc =
            base_buf_printf(out, ",\"last_window\":{\"span_ms\":%" PRId64 ",\"pages\":%" PRId64 "}",
                            c->last_span_ms, c->last_pages);
    if (rc == 0)
        rc = base_buf_puts(out, ",\"window\":");
    if (rc < 0)
        return rc;
    if (!c->in_window)
        return base_buf_puts(out, "null}");
    rc = base_buf_printf(out,
                         "{\"since_ms\":%" PRId64 ",\"until_ms\":%" PRId64 ",\"offset\":%" PRId64
                         ",\"epoch\":%" PRIu32,
                         c->since_ms, c->until_ms, c->next_offset, c->epoch);
    if (rc == 0 && c->have_last_id)
        rc = base_buf_printf(out, ",\"last_id\":%" PRId64, c->last_id);
    if (rc == 0 && c->win_pages > 0)
        rc = base_buf_printf(out, ",\"pages\":%" PRId64, c->win_pages);
    if (rc == 0 && c->have_done)
        rc = base_buf_printf(out, ",\"parent_done\":%" PRId64, c->done_through);
    if (rc == 0 && c->mark[0] != '\0')
        rc = base_buf_printf(out, ",\"mark\":\"%s\",\"parent_complete\":%s", c->mark,
                             c->parent_complete > 0 ? "true" : "false");
    if (rc == 0 && c->page_token != NULL) {
        cJSON *item = cJSON_CreateStringReference(c->page_token);
        char *tok = item ? cJSON_PrintUnformatted(item) : NULL;

        rc = tok ? base_buf_printf(out, ",\"page_token\":%s", tok) : BASE_ENOMEM;
        cJSON_free(tok);
        cJSON_Delete(item); /* frees the item, not the referenced token */
    }
    if (rc == 0)
        rc = base_buf_puts(out, "}}");
    return rc;
}

bool cursor_record_id(const struct jobs_job *def, const cJSON *rec, int64_t *id)
{
    char buf[64];

    if (map_record_id(&def->map, rec, buf, sizeof(buf)) != 0)
        return false;
    return base_parse_int64(buf, id) == 0;
}

int cursor_v1_first_new(const struct sched_cursor *c, const struct jobs_job *def, int overlap,
                        int64_t offset, const cJSON *recs, int n)
{
    const cJSON *rec = recs != NULL ? recs->child : NULL;
    int p = 0;

    if (!overlap || !c->have_last_id)
        return 0;
    for (p = 0; p < n && rec != NULL; p++, rec = rec->next) {
        int64_t id;

        if (!cursor_record_id(def, rec, &id))
            return 0; /* ids unusable: fall back to plain offsets */
        if (id > c->last_id)
            break;
    }
    if (p == 0 && offset > 0)
        return -1;
    return p;
}

int64_t cursor_v1_step_back(struct sched_cursor *c, int page_size, int64_t offset)
{
    /* Few records leave a window while one page is read: step back a little first (more
     * new records per request), then twice as far each time it is not enough. */
    int64_t step = (int64_t)16 << (c->stepback < 16 ? c->stepback : 16);
    int64_t back;

    if (step > page_size - 1)
        step = page_size - 1;
    back = offset - step;
    c->stepback++;
    c->next_offset = back > 0 ? back : 0;
    c->epoch++;
    return c->next_offset;
}

int cursor_load(struct sched_cursor *c, const char *json, const struct jobs_job *def,
                struct base_err *err)
{
    cJSON *root, *w, *it;

    c->watermark_ms = -1;
    c->completed_ms = -1;
    c->in_window = false;
    c->parent_complete = -1;
    if (json == NULL)
        return 0;
    root = cJSON_Parse(json);
    if (root == NULL)
        return base_err_set(err, BASE_EPROTO, "checkpoint of job \"%s\" is not valid JSON",
                            def->name);
    it = cJSON_GetObjectItemCaseSensitive(root, "watermark_ms");
    if (cJSON_IsNumber(it))
        c->watermark_ms = (int64_t)it->valuedouble;
    it = cJSON_GetObjectItemCaseSensitive(root, "completed_ms");
    if (cJSON_IsNumber(it))
        c->completed_ms = (int64_t)it->valuedouble;
    c->since_mark[0] = c->mark[0] = '\0';
    it = cJSON_GetObjectItemCaseSensitive(root, "parent_mark");
    if (cJSON_IsString(it))
        snprintf(c->since_mark, sizeof(c->since_mark), "%s", it->valuestring);
    c->win_pages = c->last_span_ms = c->last_pages = 0;
    w = cJSON_GetObjectItemCaseSensitive(root, "last_window");
    if (cJSON_IsObject(w)) {
        it = cJSON_GetObjectItemCaseSensitive(w, "span_ms");
        c->last_span_ms = cJSON_IsNumber(it) && it->valuedouble > 0 ? (int64_t)it->valuedouble : 0;
        it = cJSON_GetObjectItemCaseSensitive(w, "pages");
        c->last_pages = cJSON_IsNumber(it) && it->valuedouble > 0 ? (int64_t)it->valuedouble : 0;
    }
    w = cJSON_GetObjectItemCaseSensitive(root, "window");
    if (cJSON_IsObject(w)) {
        c->in_window = true;
        it = cJSON_GetObjectItemCaseSensitive(w, "since_ms");
        c->since_ms = cJSON_IsNumber(it) ? (int64_t)it->valuedouble : -1;
        it = cJSON_GetObjectItemCaseSensitive(w, "until_ms");
        c->until_ms = cJSON_IsNumber(it) ? (int64_t)it->valuedouble : -1;
        it = cJSON_GetObjectItemCaseSensitive(w, "offset");
        c->next_offset = cJSON_IsNumber(it) ? (int64_t)it->valuedouble : 0;
        it = cJSON_GetObjectItemCaseSensitive(w, "epoch");
        c->epoch = cJSON_IsNumber(it) ? (uint32_t)it->valuedouble : 0;
        it = cJSON_GetObjectItemCaseSensitive(w, "last_id");
        if (cJSON_IsNumber(it)) {
            c->have_last_id = true;
            c->last_id = (int64_t)it->valuedouble;
        }
        it = cJSON_GetObjectItemCaseSensitive(w, "pages");
        c->win_pages = cJSON_IsNumber(it) && it->valuedouble > 0 ? (int64_t)it->valuedouble : 0;
        it = cJSON_GetObjectItemCaseSensitive(w, "parent_done");
        if (cJSON_IsNumber(it)) {
            c->have_done = true;
            c->done_through = (int64_t)it->valuedouble;
        }
        it = cJSON_GetObjectItemCaseSensitive(w, "mark");
        if (cJSON_IsString(it)) {
            snprintf(c->mark, sizeof(c->mark), "%s", it->valuestring);
            it = cJSON_GetObjectItemCaseSensitive(w, "parent_complete");
            c->parent_complete = cJSON_IsTrue(it) ? 1 : 0;
        }
        it = cJSON_GetObjectItemCaseSensitive(w, "page_token");
        if (cJSON_IsString(it) && (c->page_token = strdup(it->valuestring)) == NULL) {
            cJSON_Delete(root);
            return base_err_set(err, BASE_ENOMEM, "out of memory");
        }
    }
    cJSON_Delete(root);
    return 0;
}

void cursor_after_page(const struct sched_cursor *c, const struct jobs_job *def, int overlap,
                       int64_t offset, const cJSON *recs, int n, char *next_token,
                       int64_t sent_wall, struct sched_cursor *next)
{
    *next = *c;
    next->win_pages = c->win_pages + 1;
    if (def->api == KEAP_API_V1) {
        int64_t id;

        if (n > 0 && overlap && cursor_record_id(def, cJSON_GetArrayItem(recs, n - 1), &id) &&
            (!c->have_last_id || id > c->last_id)) {
            next->have_last_id = true;
            next->last_id = id;
        }
        next->next_offset = n > 0 ? offset + n - overlap : offset;
        next->done = n < def->page_size;
        next->page_token = NULL;
    } else {
        next->page_token = next_token;
        next->done = next_token == NULL || next_token[0] == '\0';
    }
    if (next->done) {
        if (def->incremental)
            next->watermark_ms = c->until_ms;
        next->completed_ms = sent_wall > c->completed_ms ? sent_wall : c->completed_ms;
        next->in_window = false;
        if (c->since_ms >= 0 && c->until_ms > c->since_ms) {
            next->last_span_ms = c->until_ms - c->since_ms;
            next->last_pages = next->win_pages;
        }
        next->win_pages = 0;
    }
}

int cursor_advance(struct sched_cursor *c, const struct sched_cursor *next)
{
    char *tok = NULL;
    int rc = BASE_OK;

    if (next->page_token != NULL && (tok = strdup(next->page_token)) == NULL)
        rc = BASE_ENOMEM;
    free(c->page_token);
    c->page_token = tok;
    c->next_offset = next->next_offset;
    c->have_last_id = next->have_last_id;
    c->last_id = next->last_id;
    c->done = next->done;
    c->watermark_ms = next->watermark_ms;
    c->completed_ms = next->completed_ms;
    c->in_window = next->in_window;
    c->win_pages = next->win_pages;
    c->last_span_ms = next->last_span_ms;
    c->last_pages = next->last_pages;
    c->stepback = 0;
    return rc;
}

bool cursor_fresh(const struct sched_cursor *c, const struct jobs_job *def,
                  const struct base_clock *clock)
{
    return def->refresh_hours > 0 && !c->in_window && c->completed_ms >= 0 &&
           base_clock_wall_ms(clock) - c->completed_ms < (int64_t)def->refresh_hours * 3600000;
}

void cursor_open_window(struct sched_cursor *c, const struct jobs_job *def,
                        const struct base_clock *clock)
{
    int64_t wall = base_clock_wall_ms(clock);

    if (c->in_window)
        return;
    c->in_window = true;
    c->next_offset = 0;
    c->win_pages = 0;
    c->have_last_id = false;
    c->since_ms = -1;
    c->until_ms = -1;
    if (def->incremental) {
        if (c->watermark_ms >= 0)
            c->since_ms = c->watermark_ms - (int64_t)def->overlap_s * 1000;
        c->until_ms = wall - (int64_t)def->lag_s * 1000;
        /* A clock set back does not take the watermark back with it (records changed since
         * would be read again, and the checkpoint would go backwards): the window then only
         * re-reads the overlap. */
        if (c->watermark_ms >= 0 && c->until_ms < c->watermark_ms)
            c->until_ms = c->watermark_ms;
    } else if (def->parent_job != NULL) {
        cursor_open_pass(c);
    }
}

void cursor_open_pass(struct sched_cursor *c)
{
    c->in_window = true;
    c->next_offset = 0;
    c->win_pages = 0;
    c->have_done = false;
    c->done_through = 0;
    c->mark[0] = '\0';
    c->parent_complete = -1;
    cursor_plist_clear(c);
}

void cursor_plist_clear(struct sched_cursor *c)
{
    for (int i = 0; i < c->plist_n; i++)
        free(c->plist[i].keep);
    c->plist_n = 0;
}
