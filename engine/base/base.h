/*
 * base: the bottom of keapsync. Error codes and error reports, logging, clocks that tests
 * can drive, bounded buffers, strict number parsing and ISO-8601 time.
 *
 * Words used here:
 *   error code  a negative int (BASE_E*); 0 is success. Every engine function that can fail
 *               returns one.
 *   report      struct base_err: a code plus a PostgreSQL-style message ("could not ...")
 *               and an optional hint, printed on one line by the CLI.
 *   mono ms     milliseconds of a monotonic clock (pacing); never compared across processes.
 *   wall ms     milliseconds since the Unix epoch, UTC (quota days, windows, checkpoints).
 */
#ifndef KEAPSYNC_BASE_H
#define KEAPSYNC_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes. Negative, so "rc < 0" means failure everywhere. */
enum {
    BASE_OK = 0,
    BASE_ENOMEM = -1, /* allocation failed */
    BASE_EINVAL = -2, /* bad argument or malformed input */
    BASE_EIO = -3,    /* file or socket I/O failed */
    BASE_EAGAIN = -4, /* not now; try later (pacing, transient HTTP) */
    BASE_ERANGE = -5, /* number out of range */
    BASE_ENOTFOUND = -6,
    BASE_EAUTH = -7,    /* credentials refused */
    BASE_EQUOTA = -8,   /* the day's quota is spent */
    BASE_ECONFIG = -9,  /* bad configuration or usage (exit 2) */
    BASE_EDB = -10,     /* database error */
    BASE_EPROTO = -11,  /* the server broke the protocol (bad JSON, unexpected shape) */
    BASE_ETOOBIG = -12, /* a bounded buffer hit its cap */
    BASE_ECANCELED = -13,
};

const char *base_strerror(int code);

/* An error report: filled where the failure is understood, printed by the CLI. */
struct base_err {
    int code;
    char msg[512];
    char hint[512];
};

void base_err_clear(struct base_err *err);
/* Sets code and message (printf-style); clears any earlier hint. Returns code. NULL err is ok. */
int base_err_set(struct base_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets the hint of an already set report. */
void base_err_hint(struct base_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Logging to stderr. Lines look like "keapsync: LEVEL: message". Never pass secrets. */
enum base_log_level {
    BASE_LOG_DEBUG = 0,
    BASE_LOG_INFO = 1,
    BASE_LOG_WARNING = 2,
    BASE_LOG_ERROR = 3,
    BASE_LOG_QUIET = 4,
};
void base_log_set_level(enum base_log_level level);
enum base_log_level base_log_get_level(void);
/* The program name printed before each line ("keapsync", "keapsim"). */
void base_log_set_prog(const char *prog);
void base_log(enum base_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define base_log_debug(...)   base_log(BASE_LOG_DEBUG, __VA_ARGS__)
#define base_log_info(...)    base_log(BASE_LOG_INFO, __VA_ARGS__)
#define base_log_warning(...) base_log(BASE_LOG_WARNING, __VA_ARGS__)
#define base_log_error(...)   base_log(BASE_LOG_ERROR, __VA_ARGS__)

/*
 * Clocks. Everything that reads time takes a struct base_clock so tests can drive it.
 * base_clock_system() reads CLOCK_MONOTONIC and CLOCK_REALTIME (faketime moves the latter).
 */
struct base_clock {
    uint64_t (*mono_ms)(void *ud);
    int64_t (*wall_ms)(void *ud);
    void *ud;
};
const struct base_clock *base_clock_system(void);
uint64_t base_clock_mono_ms(const struct base_clock *c);
int64_t base_clock_wall_ms(const struct base_clock *c);

/* A fake clock for tests: both readings are plain fields the test moves. */
struct base_fake_clock {
    struct base_clock clock; /* points back at this struct */
    uint64_t mono;
    int64_t wall;
};
void base_fake_clock_init(struct base_fake_clock *fc, uint64_t mono, int64_t wall);

/*
 * Bounded buffer. Grows on demand up to max bytes; data is always NUL-terminated.
 * Appending past max fails with BASE_ETOOBIG and leaves the buffer unchanged.
 */
struct base_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
};
void base_buf_init(struct base_buf *b, size_t max);
int base_buf_append(struct base_buf *b, const void *p, size_t n);
int base_buf_puts(struct base_buf *b, const char *s);
int base_buf_printf(struct base_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int base_buf_reserve(struct base_buf *b, size_t extra);
void base_buf_reset(struct base_buf *b); /* len = 0, keeps memory */
void base_buf_free(struct base_buf *b);  /* accepts a zeroed or freed buffer */

/* Strict number parsing: the whole string must be a number in range. */
int base_parse_int64(const char *s, int64_t *out);
int base_parse_double(const char *s, double *out);

/* snprintf that reports truncation: BASE_ETOOBIG if the output did not fit. */
int base_snprintf(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* strdup that returns NULL on NULL input. */
char *base_strdup(const char *s);

/*
 * ISO-8601 time. Parse accepts "YYYY-MM-DDTHH:MM:SS[.fff...]" followed by "Z", "+hhmm",
 * "+hh:mm", "+hh" (or "-"); a space may stand for the "T". No zone is read as UTC.
 * Result: wall ms (UTC). Fractions below a millisecond are truncated.
 */
int base_time_parse(const char *s, int64_t *wall_ms);
/* "2024-11-07T20:35:13.000Z": the form Keap's filters want. buf needs >= 25 bytes. */
int base_time_format(int64_t wall_ms, char *buf, size_t n);
/* "2024-11-07": the UTC day of wall_ms. buf needs >= 11 bytes. */
int base_time_format_day(int64_t wall_ms, char *buf, size_t n);
/* Start of the UTC day that holds wall_ms, and of the next one. */
int64_t base_time_day_start(int64_t wall_ms);
int64_t base_time_next_day(int64_t wall_ms);

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif
#define BASE_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Secrets (secret.c). base_read_private_file reads at most cap bytes of the regular file
 * path into buf, refusing a file with any group or other permission bit (BASE_ECONFIG, the
 * hint says chmod 600), or one larger than cap. what names the file in messages ("client
 * secret file"); messages never contain its content. On failure buf is wiped.
 */
int base_read_private_file(const char *path, const char *what, size_t cap, unsigned char *buf,
                           size_t *len, struct base_err *err);
/* Overwrites n bytes at p with zeros in a way the compiler keeps. Accepts NULL. */
void base_wipe(void *p, size_t n);
/* Wipes and frees a NUL-terminated secret. Accepts NULL. */
void base_secret_free(char *s);

#endif
