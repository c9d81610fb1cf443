/* fuzz_ws_message.c - the WebSocket client-message parser (gw_ws_parse),
 * then the argument shapes the handlers read from it. */
#include "fuzz.h"
#include "gateway/gateway_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *type = NULL, *why = NULL;
    json_t *msg = gw_ws_parse((const char *)data, size, &type, &why);
    if (!msg) {
        if (!why) abort();
        return 0;
    }
    if (!json_is_object(msg) || !type || why) abort();
    /* what on_subscribe / on_send / on_read look at */
    const char *conv = json_string_value(json_object_get(msg, "conversation"));
    if (conv && strlen(conv) < OH_ID_MAX) {
        struct oh_principal who = {.role = OH_ROLE_CUSTOMER};
        snprintf(who.sub, sizeof who.sub, "fuzz");
        (void)oh_auth_may_access(&who, conv);
    }
    (void)json_integer_value(json_object_get(msg, "after"));
    (void)json_integer_value(json_object_get(msg, "seq"));
    (void)json_string_value(json_object_get(msg, "client_msg_id"));
    json_t *text = json_object_get(msg, "text");
    if (json_is_string(text))
        (void)oh_utf8_valid(json_string_value(text), json_string_length(text));
    json_decref(msg);
    return 0;
}
