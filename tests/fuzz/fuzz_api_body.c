/* fuzz_api_body.c - the api connector's one-pass body scan against jansson,
 * the parser of record: for any bytes, the normalizer with the scan and
 * without it gives the same events (byte for byte) or the same error, and
 * every body the scan takes, json_loadb reads with the same members. */
#include <jansson.h>
#include "connectors/api/api_body.h"
#include "core/json_dump.h"
#include "fuzz.h"

static const char *const names[API_NFIELDS] = {
    [API_CHANNEL] = "channel",  [API_ACCOUNT] = "account", [API_MESSAGE_ID] = "message_id",
    [API_TEXT] = "text",        [API_SENT_AT] = "sent_at", [API_CONTACT_ID] = "id",
    [API_CONTACT_NAME] = "name"};

static void same_as_jansson(const uint8_t *data, size_t size)
{
    struct api_body b;
    if (!api_body_scan((const char *)data, size, &b)) return;
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(in)) abort();
    const json_t *contact = json_object_get(in, "contact");
    if (b.contact != json_is_object(contact) || (contact && !b.contact)) abort();
    size_t top = b.contact, inner = 0;
    for (int i = 0; i < API_NFIELDS; i++) {
        const json_t *v = json_object_get(i >= API_CONTACT_ID ? contact : in, names[i]);
        if (!b.s[i]) {
            if (v) abort();
            continue;
        }
        if (!json_is_string(v) || json_string_length(v) != b.len[i] ||
            memcmp(json_string_value(v), b.s[i], b.len[i]) != 0 || b.s[i][b.len[i]])
            abort();
        if (i >= API_CONTACT_ID)
            inner++;
        else
            top++;
    }
    /* nothing else in either object */
    if (json_object_size(in) != top || (contact && json_object_size(contact) != inner)) abort();
    json_decref(in);
    api_body_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    same_as_jansson(data, size);
    struct oh_norm_ctx nc = {size % 2 ? "acct-1" : NULL, 1767225600000};
    struct oh_event_list a = {0}, b = {0};
    char ea[512] = "", eb[512] = "";
    int ra = api_normalize_with(&nc, data, size, true, &a, ea, sizeof ea);
    int rb = api_normalize_with(&nc, data, size, false, &b, eb, sizeof eb);
    if (ra != rb || strcmp(ea, eb) != 0 || a.n != b.n) abort();
    for (size_t i = 0; i < a.n; i++) {
        size_t la, lb;
        char *da = oh_json_dump(a.ev[i], &la), *db = oh_json_dump(b.ev[i], &lb);
        if (!da || !db || la != lb || memcmp(da, db, la) != 0) abort();
        free(da);
        free(db);
    }
    oh_event_list_clear(&a);
    oh_event_list_clear(&b);
    return 0;
}
