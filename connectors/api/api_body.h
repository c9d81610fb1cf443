/* api_body.h - the common shape of a POST /v1/inbound body read in one pass,
 * without building a jansson tree; and the api connector's normalizer with
 * that pass on or off (the fuzz target compares the two). */
#ifndef OH_API_BODY_H
#define OH_API_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include "core/connector.h"

enum {
    API_CHANNEL,
    API_ACCOUNT,
    API_MESSAGE_ID,
    API_TEXT,
    API_SENT_AT,
    API_CONTACT_ID,
    API_CONTACT_NAME,
    API_NFIELDS
};

/* The members of a simple body: NUL-terminated UTF-8 without NUL, NULL
 * when absent (API_CONTACT_*: absent also when there is no contact). */
struct api_body {
    const char *s[API_NFIELDS];
    size_t len[API_NFIELDS];
    bool contact; /* "contact" was given (always an object here) */
    char *buf;    /* holds the strings: api_body_free() */
};

/* Reads BODY (LEN bytes) when it is one JSON object whose members are
 * channel, account, message_id, text and sent_at with string values and
 * contact, an object of id and name strings, each at most once, with no
 * escape but \" \\ \/ \b \f \n \r \t: true, OUT filled, and json_loadb()
 * with JSON_REJECT_DUPLICATES would read the same values. Anything else
 * (attachments, identifiers, other members or types, \u escapes, malformed
 * or not UTF-8) is false: parse it with jansson, which also words the
 * error. Pure. */
bool api_body_scan(const char *body, size_t len, struct api_body *out);
void api_body_free(struct api_body *b);

/* The api connector's normalizer (its vtable's), FAST false: always through
 * json_loadb. Both give the same events or the same error for any body. */
int api_normalize_with(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len, bool fast,
                       struct oh_event_list *out, char *err, size_t errlen);

#endif
