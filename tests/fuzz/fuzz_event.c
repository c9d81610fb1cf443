/* fuzz_event.c - what enters the log from outside the broker: the
 * CloudEvents envelope check, RFC 3339 times and the UTF-8 check. */
#include "core/event.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t e;
    json_t *ev = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &e);
    char err[256];
    if (ev && oh_event_validate(ev, err, sizeof err) == OH_OK) {
        if (!oh_event_subject(ev) || !oh_event_get_id(ev)) abort();
        const char *t = json_string_value(json_object_get(ev, "time"));
        int64_t ms;
        if (t) (void)oh_time_parse(t, &ms);
    }
    json_decref(ev);
    char *s = fuzz_cstr(data, size);
    int64_t ms;
    if (oh_time_parse(s, &ms) == OH_OK) {
        char back[32];
        oh_time_rfc3339(back, ms);
    }
    (void)oh_utf8_valid((const char *)data, size);
    free(s);
    return 0;
}
