/* fuzz_visibility.c - what a customer may see of a stored event: for any
 * event with a type, stored as omnihub stores it (oh_json_dump), the
 * cheap look at the text (oh_event_text_maybe_internal) never passes on
 * unparsed what the parsed rules would hide, and the text a customer gets
 * is the parsed rules' answer with nothing internal left in it. */
#include <stdio.h>
#include "core/event.h"
#include "core/json_dump.h"
#include "fuzz.h"

static void shown_clean(const json_t *ev)
{
    const char *type = oh_event_get_type(ev);
    const json_t *data = oh_event_data(ev);
    if (!type) abort();
    if (strcmp(type, OH_EV_INTERNAL) == 0) {
        if (data) abort(); /* a placeholder has no data */
        return;
    }
    if (json_is_true(json_object_get(data, "internal")) || json_object_get(data, "bot") ||
        json_object_get(data, "suggestion") || strcmp(type, OH_EV_ENRICHED) == 0 ||
        strncmp(type, OH_EV_CONTACT_PREFIX, strlen(OH_EV_CONTACT_PREFIX)) == 0)
        abort();
    if (strcmp(type, OH_EV_UPDATED) == 0) {
        const char *st =
            json_string_value(json_object_get(json_object_get(data, "state"), "status"));
        if (!st || json_object_size(json_object_get(data, "state")) != 1 ||
            (strcmp(st, "open") && strcmp(st, "resolved")))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *ev = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    /* every stored event has a type, one of omnihub's own (no NUL in it) */
    const json_t *type = json_object_get(ev, "type");
    if (!json_is_string(type) || strlen(json_string_value(type)) != json_string_length(type)) {
        json_decref(ev);
        return 0;
    }
    size_t len, outlen;
    char *text = oh_json_dump(ev, &len), *out = NULL;
    if (!text) abort();
    enum oh_visibility v = oh_event_visibility(ev);
    if (v != OH_VIS_ALL && !oh_event_text_maybe_internal(text, len)) {
        fprintf(stderr, "hidden by the rules, passed on by the look: %s\n", text);
        abort();
    }
    if (oh_event_customer_text(text, len, &out, &outlen) != OH_OK) abort();
    json_t *want = oh_event_for_customer(ev);
    if (!want) abort();
    if (!out) {
        if (v != OH_VIS_ALL || want != ev) abort(); /* passed on as stored */
    } else {
        size_t wl;
        char *w = oh_json_dump(want, &wl);
        json_t *got = json_loadb(out, outlen, 0, NULL);
        if (!w || wl != outlen || memcmp(w, out, wl) != 0 || !got) abort();
        shown_clean(got);
        json_decref(got);
        free(w);
    }
    if (v == OH_VIS_ALL) shown_clean(ev);
    json_decref(want);
    free(out);
    free(text);
    json_decref(ev);
    return 0;
}
