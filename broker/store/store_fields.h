/* store_fields.h - private to the store backends: the fields of an event
 * that the materialization needs, extracted once by store.c. */
#ifndef OH_STORE_FIELDS_H
#define OH_STORE_FIELDS_H

#include <jansson.h>
#include "store/store_int.h"

/* Borrowed pointers into the event; "" where a field is absent. */
struct oh_store_fields {
    const char *id, *conv, *type;
    const char *channel, *account, *contact_id, *contact_name;
    const char *message_id;  /* data.message_id */
    const char *status_mid;  /* data.status.message_id (else data.message_id) */
    const char *provider_id; /* data.status.provider_message_id */
    const char *state;       /* data.status.state for status events, else "" */
    int rank;                /* oh_store_state_rank(state) */
    bool inbound, status;
    int64_t ts_ms; /* "time", now when absent or unparsable */
};

/* OH_EINVAL when EV is not an object or lacks id or conversation id. */
int oh_store_fields_get(const json_t *ev, struct oh_store_fields *f);

/* Removes any "seq"/"epoch" attribute from EV and returns its compact
 * serialization (caller frees with free()), NULL on allocation failure. */
char *oh_store_dump_unsequenced(json_t *ev);

/* Sets "seq" and "epoch" on EV. */
void oh_store_set_seq(json_t *ev, int64_t seq, const char *epoch);

#endif
