/*
 * Unit tests for sched's cursor (engine/sched/cursor.c, declared in sched_int.h), on a
 * base_fake_clock and the shipped jobs/contacts.json: opening a window from the watermark
 * with the job's lag and overlap, the refresh_hours skip, the v1 drift check (which record
 * of a page is the first new one, when a page shows records shifted), the doubling
 * step-back, the cursor after a committed page (v1 offsets and last id, v2 tokens, closing
 * the window), the checkpoint's JSON text read back by cursor_load, and the run's outcome
 * for each way a run ends (sched_result_fill); delete sweeps (when one is due, a sweep's
 * window and checkpoint, the ids a page records) and backfill windows (their sizing to the
 * day's budget, and windows that follow each other up to the range's end).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"
#include "test_assert.h"

#define MIN_MS  60000LL
#define HOUR_MS 3600000LL

/* 2026-03-01T12:00:00Z */
#define T0 1772366400000LL

static struct jobs_job contacts;

static int setup_job(void **state)
{
    struct base_err err;

    (void)state;
    base_err_clear(&err);
    if (jobs_load_file(KEAPSYNC_SOURCE_DIR "/jobs/contacts.json", &contacts, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown_job(void **state)
{
    (void)state;
    jobs_job_free(&contacts);
    return 0;
}

/* A cursor as cursor_load leaves it for a job that never ran. */
static void cursor_none(struct sched_cursor *c)
{
    struct base_err err;

    memset(c, 0, sizeof(*c));
    assert_int_equal(cursor_load(c, NULL, &contacts, &err), 0);
}

static void cursor_clear(struct sched_cursor *c)
{
    free(c->page_token);
    free(c->plist);
    memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------------ windows */

static void test_window_first(void **state)
{
    struct base_fake_clock fc;
    struct sched_cursor c;

    (void)state;
    /* The shipped job is what the window arithmetic below assumes. */
    assert_true(contacts.incremental);
    assert_int_equal(contacts.lag_s, 60);
    assert_int_equal(contacts.overlap_s, 300);

    base_fake_clock_init(&fc, 5000, T0);
    cursor_none(&c);
    assert_int_equal(c.watermark_ms, -1);
    assert_false(c.in_window);
    cursor_open_window(&c, &contacts, &fc.clock);
    assert_true(c.in_window);
    assert_int_equal(c.since_ms, -1); /* no watermark: open below */
    assert_int_equal(c.until_ms, T0 - MIN_MS);
    assert_int_equal(c.next_offset, 0);
    assert_false(c.have_last_id);
    cursor_clear(&c);
}

static void test_window_from_watermark(void **state)
{
    struct base_fake_clock fc;
    struct sched_cursor c;

    (void)state;
    base_fake_clock_init(&fc, 5000, T0);
    cursor_none(&c);
    c.watermark_ms = T0 - 2 * HOUR_MS;
    c.have_last_id = true; /* left from the last window: a new one starts afresh */
    c.last_id = 77;
    c.next_offset = 1234;
    cursor_open_window(&c, &contacts, &fc.clock);
    assert_int_equal(c.since_ms, T0 - 2 * HOUR_MS - 300 * 1000);
    assert_int_equal(c.until_ms, T0 - MIN_MS);
    assert_int_equal(c.next_offset, 0);
    assert_false(c.have_last_id);

    /* A window in progress is kept as it is, however late the clock. */
    c.next_offset = 4000;
    fc.wall += 3 * HOUR_MS;
    cursor_open_window(&c, &contacts, &fc.clock);
    assert_int_equal(c.until_ms, T0 - MIN_MS);
    assert_int_equal(c.next_offset, 4000);

    /* The window done, the next one starts at the watermark less the overlap. */
    c.in_window = false;
    c.watermark_ms = c.until_ms;
    cursor_open_window(&c, &contacts, &fc.clock);
    assert_int_equal(c.since_ms, T0 - MIN_MS - 300 * 1000);
    assert_int_equal(c.until_ms, T0 + 3 * HOUR_MS - MIN_MS);
    assert_int_equal(c.next_offset, 0);
    cursor_clear(&c);
}

static void test_window_full_read(void **state)
{
    struct jobs_job full = contacts;
    struct base_fake_clock fc;
    struct sched_cursor c;

    (void)state;
    full.incremental = false;
    base_fake_clock_init(&fc, 0, T0);
    cursor_none(&c);
    c.watermark_ms = T0 - HOUR_MS;
    cursor_open_window(&c, &full, &fc.clock);
    assert_true(c.in_window);
    assert_int_equal(c.since_ms, -1);
    assert_int_equal(c.until_ms, -1);
    cursor_clear(&c);
}

static void test_fresh(void **state)
{
    struct jobs_job def = contacts;
    struct base_fake_clock fc;
    struct sched_cursor c;

    (void)state;
    def.refresh_hours = 6;
    base_fake_clock_init(&fc, 0, T0);
    cursor_none(&c);
    assert_false(cursor_fresh(&c, &def, &fc.clock)); /* never completed */
    c.completed_ms = T0 - 5 * HOUR_MS;
    assert_true(cursor_fresh(&c, &def, &fc.clock));
    fc.wall = c.completed_ms + 6 * HOUR_MS - 1;
    assert_true(cursor_fresh(&c, &def, &fc.clock));
    fc.wall = c.completed_ms + 6 * HOUR_MS;
    assert_false(cursor_fresh(&c, &def, &fc.clock));
    fc.wall = T0;
    c.in_window = true; /* a window begun is finished whatever the age */
    assert_false(cursor_fresh(&c, &def, &fc.clock));
    c.in_window = false;
    def.refresh_hours = 0; /* every run */
    assert_false(cursor_fresh(&c, &def, &fc.clock));
    cursor_clear(&c);
}

/* ------------------------------------------------------------------ v1 drift check */

/* The v1 page of records with these ids (id <= 0: a record without one). */
static cJSON *page_of(const int64_t *ids, int n)
{
    cJSON *arr = cJSON_CreateArray();

    assert_non_null(arr);
    for (int i = 0; i < n; i++) {
        cJSON *rec = cJSON_CreateObject();

        assert_non_null(rec);
        if (ids[i] > 0)
            assert_non_null(cJSON_AddNumberToObject(rec, "id", (double)ids[i]));
        assert_non_null(cJSON_AddStringToObject(rec, "given_name", "x"));
        cJSON_AddItemToArray(arr, rec);
    }
    return arr;
}

static int first_new(const struct sched_cursor *c, int overlap, int64_t offset, const int64_t *ids,
                     int n)
{
    cJSON *page = page_of(ids, n);
    int first = cursor_v1_first_new(c, &contacts, overlap, offset, page, n);

    cJSON_Delete(page);
    return first;
}

static void test_first_new(void **state)
{
    const int64_t overlapping[] = {100, 101, 102};
    const int64_t behind[] = {97, 99, 100, 104};
    const int64_t shifted[] = {101, 102, 103};
    const int64_t nothing_new[] = {90, 100};
    const int64_t no_ids[] = {0, 0, 0};
    struct sched_cursor c;

    (void)state;
    cursor_none(&c);
    c.in_window = true;
    c.have_last_id = true;
    c.last_id = 100;

    /* The page starts with the last committed record, as overlapping pages do. */
    assert_int_equal(first_new(&c, 1, 999, overlapping, 3), 1);
    /* Records were added before our position: skip up to the last committed id. */
    assert_int_equal(first_new(&c, 1, 999, behind, 4), 3);
    /* The overlap record is gone: records shifted left past us, step back. */
    assert_int_equal(first_new(&c, 1, 999, shifted, 3), -1);
    assert_int_equal(first_new(&c, 1, 1, shifted, 3), -1);
    /* The window's first page cannot have shifted. */
    assert_int_equal(first_new(&c, 1, 0, shifted, 3), 0);
    /* Every record is old: none is new. */
    assert_int_equal(first_new(&c, 1, 999, nothing_new, 2), 2);
    /* No drift check without overlap, without a last id, or without usable ids. */
    assert_int_equal(first_new(&c, 0, 999, behind, 4), 0);
    assert_int_equal(first_new(&c, 1, 999, no_ids, 3), 0);
    c.have_last_id = false;
    assert_int_equal(first_new(&c, 1, 999, shifted, 3), 0);
    cursor_clear(&c);
}

static void test_step_back_doubles(void **state)
{
    const int64_t steps[] = {16, 32, 64, 128, 256, 512, 999, 999};
    struct sched_cursor c;
    int64_t at = 100000;

    (void)state;
    cursor_none(&c);
    c.epoch = 7;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        int64_t back = cursor_v1_step_back(&c, contacts.page_size, at);

        assert_int_equal(back, at - steps[i]);
        assert_int_equal(c.next_offset, back);
        assert_int_equal(c.stepback, i + 1);
        assert_int_equal(c.epoch, 8 + i);
        at = back;
    }
    /* Never before the window's start. */
    assert_int_equal(cursor_v1_step_back(&c, contacts.page_size, 10), 0);
    assert_int_equal(c.next_offset, 0);
    /* A commit resets the distance (ops.c sets stepback to 0); small pages step less. */
    c.stepback = 0;
    assert_int_equal(cursor_v1_step_back(&c, 10, 500), 491);
    cursor_clear(&c);
}

/* ------------------------------------------------------------------ after a page */

/* A cursor in the window [T0 - 1 h, T0), last committed id 100 at offset 999. */
static void cursor_mid_window(struct sched_cursor *c)
{
    cursor_none(c);
    c->in_window = true;
    c->since_ms = T0 - HOUR_MS;
    c->until_ms = T0;
    c->watermark_ms = T0 - HOUR_MS;
    c->next_offset = 999;
    c->have_last_id = true;
    c->last_id = 100;
    c->epoch = 4;
    c->stepback = 3;
}

static void test_after_page_v1(void **state)
{
    int64_t *ids = calloc(1000, sizeof(*ids));
    const int64_t unordered[] = {100, 101, 50};
    const int64_t no_last_id[] = {100, 101, 0};
    struct sched_cursor c, next;
    cJSON *page;

    (void)state;
    assert_non_null(ids);
    for (int i = 0; i < 1000; i++)
        ids[i] = 100 + i;
    cursor_mid_window(&c);

    /* A full page, overlapping: the next starts at its last record. */
    page = page_of(ids, 1000);
    cursor_after_page(&c, &contacts, 1, 999, page, 1000, NULL, T0 + 5, &next);
    assert_int_equal(next.next_offset, 999 + 1000 - 1);
    assert_true(next.have_last_id);
    assert_int_equal(next.last_id, 1099);
    assert_false(next.done);
    assert_true(next.in_window);
    assert_int_equal(next.watermark_ms, T0 - HOUR_MS);
    assert_int_equal(next.completed_ms, -1);
    assert_int_equal(next.epoch, 4);
    /* Plain offsets (no overlap): the next page follows, ids are not tracked. */
    cursor_after_page(&c, &contacts, 0, 999, page, 1000, NULL, T0 + 5, &next);
    assert_int_equal(next.next_offset, 1999);
    assert_int_equal(next.last_id, 100);
    cJSON_Delete(page);

    /* A short page is the window's last: the window closes at its until. */
    page = page_of(ids, 10);
    cursor_after_page(&c, &contacts, 1, 999, page, 10, NULL, T0 + 5, &next);
    assert_true(next.done);
    assert_false(next.in_window);
    assert_int_equal(next.watermark_ms, T0);
    assert_int_equal(next.completed_ms, T0 + 5);
    assert_int_equal(next.last_id, 109);
    cJSON_Delete(page);

    /* An empty page ends the window where it is. */
    cursor_after_page(&c, &contacts, 1, 999, NULL, 0, NULL, T0 + 5, &next);
    assert_true(next.done);
    assert_int_equal(next.next_offset, 999);
    assert_int_equal(next.last_id, 100);

    /* The last id only grows, and only from a record that has one. */
    page = page_of(unordered, 3);
    cursor_after_page(&c, &contacts, 1, 999, page, 3, NULL, T0 + 5, &next);
    assert_int_equal(next.last_id, 100);
    cJSON_Delete(page);
    page = page_of(no_last_id, 3);
    cursor_after_page(&c, &contacts, 1, 999, page, 3, NULL, T0 + 5, &next);
    assert_int_equal(next.last_id, 100);
    cJSON_Delete(page);

    /* A full read (not incremental) keeps its watermark when it completes. */
    {
        struct jobs_job full = contacts;

        full.incremental = false;
        c.watermark_ms = -1;
        cursor_after_page(&c, &full, 1, 999, NULL, 0, NULL, T0 + 5, &next);
        assert_true(next.done);
        assert_int_equal(next.watermark_ms, -1);
        assert_int_equal(next.completed_ms, T0 + 5);
    }
    free(ids);
    cursor_clear(&c);
}

static void test_after_page_v2(void **state)
{
    struct jobs_job v2 = contacts;
    struct sched_cursor c, next;
    char tok[] = "next-tok", empty[] = "";

    (void)state;
    v2.api = KEAP_API_V2;
    cursor_mid_window(&c);
    cursor_after_page(&c, &v2, 0, 0, NULL, 5, tok, T0 + 7, &next);
    assert_ptr_equal(next.page_token, tok); /* borrowed until cursor_advance copies it */
    assert_false(next.done);
    assert_true(next.in_window);
    assert_int_equal(next.next_offset, 999); /* v2 pages by token, not offset */

    cursor_after_page(&c, &v2, 0, 0, NULL, 5, NULL, T0 + 7, &next);
    assert_true(next.done);
    assert_false(next.in_window);
    assert_int_equal(next.watermark_ms, T0);
    assert_int_equal(next.completed_ms, T0 + 7);
    cursor_after_page(&c, &v2, 0, 0, NULL, 5, empty, T0 + 7, &next);
    assert_true(next.done);
    cursor_clear(&c);
}

static void test_advance(void **state)
{
    struct jobs_job v2 = contacts;
    struct sched_cursor c, next;
    char tok[] = "tok-2";

    (void)state;
    v2.api = KEAP_API_V2;
    cursor_mid_window(&c);
    c.page_token = strdup("tok-1");
    assert_non_null(c.page_token);
    cursor_after_page(&c, &v2, 0, 0, NULL, 5, tok, T0 + 7, &next);
    assert_int_equal(cursor_advance(&c, &next), 0);
    assert_non_null(c.page_token);
    assert_string_equal(c.page_token, "tok-2");
    assert_ptr_not_equal(c.page_token, tok); /* its own copy */
    assert_int_equal(c.stepback, 0);
    assert_int_equal(c.epoch, 4);
    assert_int_equal(c.since_ms, T0 - HOUR_MS);

    /* The window's last v1 page: the token goes, the window closes. */
    cursor_after_page(&c, &contacts, 1, 999, NULL, 0, NULL, T0 + 9, &next);
    assert_int_equal(cursor_advance(&c, &next), 0);
    assert_null(c.page_token);
    assert_true(c.done);
    assert_false(c.in_window);
    assert_int_equal(c.watermark_ms, T0);
    assert_int_equal(c.completed_ms, T0 + 9);
    cursor_clear(&c);
}

/* ------------------------------------------------------------------ checkpoints */

static char *checkpoint_of(const struct sched_cursor *c)
{
    struct base_buf b;
    char *text;

    base_buf_init(&b, 64 * 1024);
    assert_int_equal(cursor_checkpoint(c, &b), 0);
    text = strdup(b.data);
    assert_non_null(text);
    base_buf_free(&b);
    return text;
}

static void test_checkpoint_text(void **state)
{
    struct sched_cursor c;
    char *text;

    (void)state;
    cursor_none(&c);
    text = checkpoint_of(&c);
    assert_string_equal(text, "{\"v\":1,\"watermark_ms\":-1,\"completed_ms\":-1,\"window\":null}");
    free(text);

    c.in_window = true;
    c.since_ms = -1;
    c.until_ms = T0;
    c.next_offset = 2997;
    c.epoch = 3;
    c.have_last_id = true;
    c.last_id = 4242;
    text = checkpoint_of(&c);
    assert_string_equal(text, "{\"v\":1,\"watermark_ms\":-1,\"completed_ms\":-1,\"window\":"
                              "{\"since_ms\":-1,\"until_ms\":1772366400000,\"offset\":2997,"
                              "\"epoch\":3,\"last_id\":4242}}");
    free(text);
    cursor_clear(&c);
}

static void test_checkpoint_round_trip(void **state)
{
    struct base_fake_clock fc;
    struct sched_cursor c, back;
    struct base_err err;
    char *text;

    (void)state;
    base_fake_clock_init(&fc, 0, T0);
    cursor_none(&c);
    c.watermark_ms = T0 - HOUR_MS;
    c.completed_ms = T0 - HOUR_MS + 1500;
    cursor_open_window(&c, &contacts, &fc.clock);
    c.next_offset = 5994;
    c.epoch = 12;
    c.have_last_id = true;
    c.last_id = 987654321;
    c.have_done = true;
    c.done_through = 31337;
    c.page_token = strdup("tok \"quoted\" \\ back/slash \xc3\xa9");
    assert_non_null(c.page_token);

    text = checkpoint_of(&c);
    memset(&back, 0, sizeof(back));
    assert_int_equal(cursor_load(&back, text, &contacts, &err), 0);
    assert_int_equal(back.watermark_ms, c.watermark_ms);
    assert_int_equal(back.completed_ms, c.completed_ms);
    assert_true(back.in_window);
    assert_int_equal(back.since_ms, T0 - HOUR_MS - 300 * 1000);
    assert_int_equal(back.until_ms, T0 - MIN_MS);
    assert_int_equal(back.next_offset, 5994);
    assert_int_equal(back.epoch, 12);
    assert_true(back.have_last_id);
    assert_int_equal(back.last_id, 987654321);
    assert_true(back.have_done);
    assert_int_equal(back.done_through, 31337);
    assert_non_null(back.page_token);
    assert_string_equal(back.page_token, c.page_token);
    /* The text read back writes the same text. */
    {
        char *again = checkpoint_of(&back);

        assert_string_equal(again, text);
        free(again);
    }
    free(text);
    cursor_clear(&back);

    /* Between windows only the watermark and the completion time survive. */
    c.in_window = false;
    text = checkpoint_of(&c);
    memset(&back, 0, sizeof(back));
    assert_int_equal(cursor_load(&back, text, &contacts, &err), 0);
    assert_false(back.in_window);
    assert_false(back.have_last_id);
    assert_null(back.page_token);
    assert_int_equal(back.watermark_ms, T0 - HOUR_MS);
    assert_int_equal(back.completed_ms, T0 - HOUR_MS + 1500);
    free(text);
    cursor_clear(&back);
    cursor_clear(&c);
}

static void test_checkpoint_bad(void **state)
{
    struct sched_cursor c;
    struct base_err err;

    (void)state;
    memset(&c, 0, sizeof(c));
    base_err_clear(&err);
    assert_int_equal(cursor_load(&c, "{\"v\":1,\"window\":", &contacts, &err), BASE_EPROTO);
    assert_non_null(strstr(err.msg, "\"contacts\""));
    assert_non_null(strstr(err.msg, "not valid JSON"));
    cursor_clear(&c);
}

/* ------------------------------------------------------------------ sweeps and backfills */

#define DAY_MS (24 * HOUR_MS)

static void test_sweep_due(void **state)
{
    struct base_fake_clock fc;
    struct sched_cursor c;

    (void)state;
    base_fake_clock_init(&fc, 0, T0);
    cursor_none(&c);
    assert_false(cursor_sweep_due(&c, -1, 7, T0));          /* the job never completed a window */
    assert_true(cursor_sweep_due(&c, T0 - HOUR_MS, 7, T0)); /* never swept */
    assert_false(cursor_sweep_due(&c, T0, 0, T0));          /* no sweeps */
    c.completed_ms = T0 - 7 * DAY_MS + 1;
    assert_false(cursor_sweep_due(&c, T0, 7, base_clock_wall_ms(&fc.clock)));
    fc.wall += 1;
    assert_true(cursor_sweep_due(&c, T0, 7, base_clock_wall_ms(&fc.clock)));
    c.completed_ms = T0;
    c.in_window = true; /* part read: it resumes, due or not */
    assert_true(cursor_sweep_due(&c, T0, 7, T0));
    cursor_clear(&c);
}

/* A sweep's window (a job that reads everything, as the sweep's own def is): pages of ids,
 * its mark kept in the checkpoint, and its last page closing it. */
static void test_sweep_cursor(void **state)
{
    struct jobs_job sweep = contacts;
    struct base_fake_clock fc;
    struct sched_cursor c, next, back;
    struct base_buf ckpt;
    struct base_err err;
    int64_t ids[1000];
    cJSON *page;

    (void)state;
    sweep.incremental = false;
    sweep.optional_properties = NULL;
    base_fake_clock_init(&fc, 0, T0);
    cursor_none(&c);
    c.watermark_ms = T0 - HOUR_MS;
    cursor_open_window(&c, &sweep, &fc.clock);
    assert_true(c.in_window);
    assert_int_equal(c.since_ms, -1);
    assert_int_equal(c.until_ms, -1);
    snprintf(c.mark, sizeof(c.mark), "%s", "2026-03-01 12:00:00.123456+00");
    for (int i = 0; i < 1000; i++)
        ids[i] = 10 + 2 * i;
    page = page_of(ids, 1000);
    cursor_after_page(&c, &sweep, 1, 0, page, 1000, NULL, T0 + 1, &next);
    cJSON_Delete(page);
    assert_false(next.done);
    assert_int_equal(next.next_offset, 999);
    assert_int_equal(next.watermark_ms, T0 - HOUR_MS); /* a sweep moves no watermark */
    assert_int_equal(cursor_advance(&c, &next), 0);
    /* the checkpoint keeps the sweep's mark (when it began) and its offset */
    base_buf_init(&ckpt, 1 << 16);
    assert_int_equal(cursor_checkpoint(&c, &ckpt), 0);
    memset(&back, 0, sizeof(back));
    assert_int_equal(cursor_load(&back, ckpt.data, &sweep, &err), 0);
    assert_true(back.in_window);
    assert_string_equal(back.mark, c.mark);
    assert_int_equal(back.next_offset, 999);
    base_buf_free(&ckpt);
    cursor_clear(&back);
    /* a short page ends it: completed now, and not due again for sweep_days */
    page = page_of(ids, 10);
    cursor_after_page(&c, &sweep, 1, 999, page, 10, NULL, T0 + 2, &next);
    cJSON_Delete(page);
    assert_true(next.done);
    assert_false(next.in_window);
    assert_int_equal(next.completed_ms, T0 + 2);
    assert_int_equal(cursor_advance(&c, &next), 0);
    assert_false(cursor_sweep_due(&c, T0, 7, T0 + 7 * DAY_MS + 1));
    assert_true(cursor_sweep_due(&c, T0, 7, T0 + 7 * DAY_MS + 2));
    cursor_clear(&c);
}

static void test_ids_literal(void **state)
{
    const char *json = "[{\"id\":1},{\"id\":\"a\\\"b\"},{\"name\":\"no id\"},{\"id\":30}]";
    struct jobs_job text_ids = contacts;
    cJSON *recs = cJSON_Parse(json);
    struct base_buf b;

    (void)state;
    assert_non_null(recs);
    base_buf_init(&b, 4096);
    assert_int_equal(cursor_ids_literal(&contacts, recs, NULL, &b), 0);
    assert_string_equal(b.data, "{\"1\",\"30\"}"); /* bigint ids: "a\"b" is not one */
    base_buf_reset(&b);
    text_ids.map.id.type = MAP_TEXT;
    assert_int_equal(cursor_ids_literal(&text_ids, recs, NULL, &b), 0);
    assert_string_equal(b.data, "{\"1\",\"a\\\"b\",\"30\"}");
    base_buf_free(&b);
    cJSON_Delete(recs);
}

static void test_backfill_until(void **state)
{
    const int64_t from = T0 - 365 * DAY_MS, to = T0;

    (void)state;
    /* the first window: a week */
    assert_int_equal(cursor_backfill_until(from, to, 0, 0, 1000), from + 7 * DAY_MS);
    /* never beyond the range */
    assert_int_equal(cursor_backfill_until(to - DAY_MS, to, 0, 0, 1000), to);
    assert_int_equal(cursor_backfill_until(to, to, 0, 0, 1000), to);
    /* a week cost 10 requests and 20 remain today: two weeks */
    assert_int_equal(cursor_backfill_until(from, to, 7 * DAY_MS, 10, 20), from + 14 * DAY_MS);
    /* sparse history: at most 4 times the last span */
    assert_int_equal(cursor_backfill_until(from, to, 7 * DAY_MS, 1, 1000), from + 28 * DAY_MS);
    /* dense history, little left today: at least a quarter of the last span */
    assert_int_equal(cursor_backfill_until(from, to, 8 * DAY_MS, 1000, 1), from + 2 * DAY_MS);
    /* nothing left today: the same span (the window resumes tomorrow) */
    assert_int_equal(cursor_backfill_until(from, to, 7 * DAY_MS, 10, 0), from + 7 * DAY_MS);
    /* an empty window: 4 times as long */
    assert_int_equal(cursor_backfill_until(from, to, DAY_MS, 0, 5), from + 4 * DAY_MS);
    /* never under an hour */
    assert_int_equal(cursor_backfill_until(from, to, 2 * MIN_MS, 100, 1), from + HOUR_MS);
}

/* A completed window leaves its span and pages in the checkpoint, for the next run's first
 * backfill window; a window in progress counts its pages. */
static void test_last_window(void **state)
{
    int64_t ids[3] = {1, 2, 3};
    struct sched_cursor c, next, back;
    struct base_err err;
    cJSON *page = page_of(ids, 3);
    char *text;

    (void)state;
    cursor_none(&c);
    cursor_backfill_open(&c, T0 - 3 * DAY_MS, T0 - DAY_MS);
    c.win_pages = 4; /* four pages read already */
    cursor_after_page(&c, &contacts, 0, 4000, page, 3, NULL, T0 + 1, &next);
    assert_false(next.in_window);
    assert_int_equal(next.last_span_ms, 2 * DAY_MS);
    assert_int_equal(next.last_pages, 5);
    assert_int_equal(next.win_pages, 0);
    assert_int_equal(cursor_advance(&c, &next), 0);
    text = checkpoint_of(&c);
    assert_non_null(strstr(text, "\"last_window\":{\"span_ms\":172800000,\"pages\":5}"));
    cursor_none(&back);
    assert_int_equal(cursor_load(&back, text, &contacts, &err), 0);
    assert_int_equal(back.last_span_ms, 2 * DAY_MS);
    assert_int_equal(back.last_pages, 5);
    free(text);
    /* sized from it: 5 pages over 2 days with 20 left today is 8 days */
    assert_int_equal(
        cursor_backfill_until(T0 - 10 * DAY_MS, T0, back.last_span_ms, back.last_pages, 20),
        T0 - 2 * DAY_MS);
    /* a window in progress keeps its count of pages */
    cursor_backfill_open(&back, T0 - DAY_MS, T0);
    back.win_pages = 2;
    text = checkpoint_of(&back);
    assert_non_null(strstr(text, "\"pages\":2}"));
    cursor_clear(&back);
    assert_int_equal(cursor_load(&back, text, &contacts, &err), 0);
    assert_int_equal(back.win_pages, 2);
    free(text);
    cursor_clear(&back);
    cursor_clear(&c);
    cJSON_Delete(page);
}

/* Windows of a backfill follow each other without a gap up to the range's end. */
static void test_backfill_windows(void **state)
{
    const int64_t from = T0 - 30 * DAY_MS, to = T0;
    struct sched_cursor c, next;
    int64_t since = from, span = 0;
    uint32_t epoch;
    int windows = 0;

    (void)state;
    cursor_none(&c);
    while (c.watermark_ms < to) {
        int64_t until = cursor_backfill_until(since, to, span, 10, 10);

        epoch = c.epoch;
        cursor_backfill_open(&c, since, until);
        assert_int_equal(c.epoch, epoch + 1); /* pages of the last window are dropped */
        assert_true(c.in_window);
        assert_int_equal(c.since_ms, since);
        ASSERT_GT(c.until_ms, since);
        ASSERT_LE(c.until_ms, to);
        assert_int_equal(c.next_offset, 0);
        /* an empty page ends the window: the watermark is its until */
        cursor_after_page(&c, &contacts, 1, 0, NULL, 0, NULL, T0, &next);
        assert_true(next.done);
        assert_int_equal(next.watermark_ms, until);
        assert_int_equal(cursor_advance(&c, &next), 0);
        span = until - since;
        since = c.watermark_ms;
        windows++;
    }
    assert_int_equal(c.watermark_ms, to);
    assert_int_equal(windows, 5); /* a week each (same cost, same budget), then the 2 days left */
    cursor_clear(&c);
}

/* A products sync keeps the first page's token for the next pass, and only then uses it. */
static void test_sync_tokens(void **state)
{
    cJSON *p1 = cJSON_Parse("{\"product_statuses\":[],\"sync_token\":\"00000000000000a1\"}");
    cJSON *p2 = cJSON_Parse("{\"product_statuses\":[],\"sync_token\":\"00000000000000b2\"}");
    cJSON *recs = cJSON_Parse("[{\"product\":{\"id\":5},\"status\":\"DELETED\"},"
                              "{\"product\":{\"id\":6},\"status\":\"UPDATED\"},"
                              "{\"product\":{\"id\":7},\"status\":\"DELETED\"}]");
    struct sched_cursor next;
    struct base_buf b;

    (void)state;
    assert_non_null(p1);
    assert_non_null(p2);
    assert_non_null(recs);
    cursor_none(&next);
    snprintf(next.since_mark, sizeof(next.since_mark), "%s", "0000000000000099");
    next.done = false;
    cursor_sync_after_page(p1, &next);
    assert_string_equal(next.mark, "00000000000000a1");
    assert_string_equal(next.since_mark, "0000000000000099"); /* the pass reads with the old */
    next.done = true;
    cursor_sync_after_page(p2, &next); /* a later page's token is newer: not kept */
    assert_string_equal(next.since_mark, "00000000000000a1");
    assert_string_equal(next.mark, "");
    base_buf_init(&b, 4096);
    assert_int_equal(cursor_ids_literal(&contacts, recs, "DELETED", &b), 0);
    assert_string_equal(b.data, "{\"5\",\"7\"}");
    base_buf_free(&b);
    cJSON_Delete(p1);
    cJSON_Delete(p2);
    cJSON_Delete(recs);
}

/* ------------------------------------------------------------------ the run's outcome */

/* The outcome of a run of two jobs in states a and b that stopped for stop. */
static enum sched_outcome outcome_of(enum sched_stop stop, enum sched_job_state a,
                                     enum sched_job_state b)
{
    struct sched_job_result jr[2] = {{.name = "a", .rows = 3}, {.name = "b", .rows = 4}};
    struct sched_job jobs[2] = {{.state = a, .res = &jr[0]}, {.state = b, .res = &jr[1]}};
    struct base_fake_clock fc;
    struct sched s = {0};
    struct sched_result res = {0};

    base_fake_clock_init(&fc, 12500, T0);
    s.clock = &fc.clock;
    s.started_mono = 10000;
    s.jobs = jobs;
    s.njobs = 2;
    s.stop = stop;
    s.requests = 9;
    s.rejected_429 = 1;
    snprintf(s.message, sizeof(s.message), "why");
    sched_result_fill(&s, &res);
    assert_int_equal(res.rows, 7);
    assert_int_equal(res.requests, 9);
    assert_int_equal(res.rejected_429, 1);
    ASSERT_GT(res.seconds, 2.49);
    ASSERT_LT(res.seconds, 2.51);
    assert_string_equal(res.message, "why");
    return res.outcome;
}

static void test_outcome(void **state)
{
    (void)state;
    assert_int_equal(outcome_of(STOP_NONE, SCHED_JOB_DONE, SCHED_JOB_DONE), SCHED_OUTCOME_COMPLETE);
    assert_int_equal(outcome_of(STOP_NONE, SCHED_JOB_DONE, SCHED_JOB_FAILED), SCHED_OUTCOME_FAILED);
    assert_int_equal(outcome_of(STOP_QUOTA, SCHED_JOB_DONE, SCHED_JOB_STOPPED),
                     SCHED_OUTCOME_QUOTA);
    /* Stopped at the quota after everything was done: complete. */
    assert_int_equal(outcome_of(STOP_QUOTA, SCHED_JOB_DONE, SCHED_JOB_DONE),
                     SCHED_OUTCOME_COMPLETE);
    /* A failed job outweighs the quota. */
    assert_int_equal(outcome_of(STOP_QUOTA, SCHED_JOB_FAILED, SCHED_JOB_STOPPED),
                     SCHED_OUTCOME_FAILED);
    assert_int_equal(outcome_of(STOP_AUTH, SCHED_JOB_FAILED, SCHED_JOB_STOPPED),
                     SCHED_OUTCOME_AUTH);
    assert_int_equal(outcome_of(STOP_SIGNAL, SCHED_JOB_DONE, SCHED_JOB_STOPPED),
                     SCHED_OUTCOME_INTERRUPTED);
    /* Out of memory is said whatever else happened. */
    assert_int_equal(outcome_of(STOP_NOMEM, SCHED_JOB_DONE, SCHED_JOB_STOPPED),
                     SCHED_OUTCOME_NOMEM);
    assert_int_equal(outcome_of(STOP_NOMEM, SCHED_JOB_FAILED, SCHED_JOB_DONE), SCHED_OUTCOME_NOMEM);
    /* A job a peer runs (skipped) is neither a failure nor left undone. */
    assert_int_equal(outcome_of(STOP_NONE, SCHED_JOB_DONE, SCHED_JOB_SKIPPED),
                     SCHED_OUTCOME_COMPLETE);
    assert_int_equal(outcome_of(STOP_NONE, SCHED_JOB_SKIPPED, SCHED_JOB_SKIPPED),
                     SCHED_OUTCOME_COMPLETE);
    assert_int_equal(outcome_of(STOP_NONE, SCHED_JOB_SKIPPED, SCHED_JOB_FAILED),
                     SCHED_OUTCOME_FAILED);
    assert_int_equal(outcome_of(STOP_QUOTA, SCHED_JOB_SKIPPED, SCHED_JOB_STOPPED),
                     SCHED_OUTCOME_QUOTA);
    assert_string_equal(sched_job_state_name(SCHED_JOB_SKIPPED), "skipped");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_first),
        cmocka_unit_test(test_window_from_watermark),
        cmocka_unit_test(test_window_full_read),
        cmocka_unit_test(test_fresh),
        cmocka_unit_test(test_first_new),
        cmocka_unit_test(test_step_back_doubles),
        cmocka_unit_test(test_after_page_v1),
        cmocka_unit_test(test_after_page_v2),
        cmocka_unit_test(test_advance),
        cmocka_unit_test(test_checkpoint_text),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_checkpoint_bad),
        cmocka_unit_test(test_outcome),
        cmocka_unit_test(test_sweep_due),
        cmocka_unit_test(test_sweep_cursor),
        cmocka_unit_test(test_ids_literal),
        cmocka_unit_test(test_backfill_until),
        cmocka_unit_test(test_backfill_windows),
        cmocka_unit_test(test_last_window),
        cmocka_unit_test(test_sync_tokens),
    };

    return cmocka_run_group_tests(tests, setup_job, teardown_job);
}
