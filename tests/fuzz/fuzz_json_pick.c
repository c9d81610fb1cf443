/* fuzz_json_pick.c - the one-pass member reader against jansson: whatever
 * the bytes, the same verdict and the same strings (json_pick_check.h). */
#include <stdio.h>
#include "fuzz.h"
#include "json_pick_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = json_pick_check((const char *)data, size);
    if (why) {
        fprintf(stderr, "json_pick: %s\n", why);
        abort();
    }
    return 0;
}
