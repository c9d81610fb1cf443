/* fuzz_normalize.c - one connector's pure normalizer (FUZZ_CONNECTOR, set by
 * meson per target): any bytes in, events or a one-line reason out. */
#include <jansson.h>
#include <stdio.h>
#include "core/connector.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct oh_connector *conn;
    if (!conn && (!(conn = oh_connector_find(FUZZ_CONNECTOR)) || !conn->normalize)) abort();
    struct oh_norm_ctx nc = {size % 2 ? "acct-1" : NULL, 1767225600000};
    struct oh_event_list out = {0};
    char err[512] = "";
    int rc = conn->normalize(&nc, data, size, &out, err, sizeof err);
    if (rc) { /* the caller drops what a refused delivery produced */
        oh_event_list_clear(&out);
        if (!err[0]) abort(); /* a refusal says why */
        return 0;
    }
    for (size_t i = 0; i < out.n; i++) {
        /* every event is a serializable envelope */
        char *s = json_dumps(out.ev[i], JSON_COMPACT);
        if (!s) abort();
        free(s);
        if (!oh_event_subject(out.ev[i]) || !oh_event_get_id(out.ev[i])) abort();
    }
    oh_event_list_clear(&out);
    return 0;
}
