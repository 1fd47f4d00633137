/*
 * secret.c: reading a secret from a file only its owner may read (an OAuth2 client secret, a
 * token encryption key), and wiping secrets from memory.
 *
 * Words used here:
 *   private file  a regular file with no group or other permission bits.
 *   wipe          overwrite through a volatile pointer, so the compiler cannot drop the stores.
 */
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void base_wipe(void *p, size_t n)
{
    volatile unsigned char *q = p;

    while (p != NULL && n-- > 0)
        *q++ = 0;
}

void base_secret_free(char *s)
{
    if (s == NULL)
        return;
    base_wipe(s, strlen(s));
    free(s);
}

int base_read_private_file(const char *path, const char *what, size_t cap, unsigned char *buf,
                           size_t *len, struct base_err *err)
{
    struct stat st;
    size_t n = 0;
    int fd, result = BASE_OK;

    /* O_NONBLOCK: a FIFO must not hang us before the regular-file check. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return base_err_set(err, BASE_ECONFIG, "could not read %s \"%s\": %s", what, path,
                            strerror(errno));
    if (fstat(fd, &st) != 0) {
        result = base_err_set(err, BASE_ECONFIG, "could not read %s \"%s\": %s", what, path,
                              strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        result = base_err_set(err, BASE_ECONFIG, "%s \"%s\" is not a regular file", what, path);
        goto out;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        result =
            base_err_set(err, BASE_ECONFIG, "%s \"%s\" is readable by other users", what, path);
        base_err_hint(err, "chmod 600 %s", path);
        goto out;
    }
    for (;;) {
        ssize_t r;

        if (n == cap) {
            unsigned char extra;

            r = read(fd, &extra, 1);
            if (r < 0 && errno == EINTR)
                continue;
            if (r > 0) {
                extra = 0;
                result = base_err_set(err, BASE_ECONFIG, "%s \"%s\" is larger than %zu bytes", what,
                                      path, cap);
                goto out;
            }
            break;
        }
        r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            result = base_err_set(err, BASE_ECONFIG, "could not read %s \"%s\": %s", what, path,
                                  strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *len = n;
out:
    if (result < 0)
        base_wipe(buf, cap);
    close(fd);
    return result;
}
