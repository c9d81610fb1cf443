/* fuzz_json_dump.c - oh_json_dump against json_dumps(JSON_COMPACT) on any
 * document jansson parses, and on the raw input as a string that was never
 * UTF-8 checked: the same text or the same failure. */
#include "core/json_dump.h"
#include "fuzz.h"

static void same(const json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT);
    size_t len = 0;
    char *got = oh_json_dump(v, &len);
    if ((want == NULL) != (got == NULL)) abort();
    if (want && (strcmp(want, got) != 0 || len != strlen(want))) abort();
    free(want);
    free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t e;
    json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (v) {
        json_t *a = json_pack("[O]", v);
        same(v);
        same(a);
        json_decref(a);
    }
    json_decref(v);
    json_t *raw = json_pack("{s:o}", "raw", json_stringn_nocheck((const char *)data, size));
    same(raw);
    json_decref(raw);
    return 0;
}
