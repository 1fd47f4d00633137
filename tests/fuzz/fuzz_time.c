/*
 * fuzz_time.c: libFuzzer target for Keap's timestamps (base_time_parse) and their formatting:
 * whatever parses formats, and the formatted text parses back to the same instant.
 */
#include "base.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[256], out[64], day[32];
    int64_t ms, back;

    if (size >= sizeof(s))
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (base_time_parse(s, &ms) != 0)
        return 0;
    if (base_time_format(ms, out, sizeof(out)) != 0)
        abort();
    if (base_time_parse(out, &back) != 0 || back != ms)
        abort(); /* format and parse must round-trip */
    if (base_time_format_day(ms, day, sizeof(day)) != 0)
        abort();
    if (base_time_day_start(ms) > ms || base_time_next_day(ms) <= ms)
        abort();
    return 0;
}
