/* handoff.h - events parsed once: the hub leaves each event it appends here,
 * keyed by its exact log text, and the sync service takes it back when it
 * reads that text from the log instead of parsing it again. A miss costs
 * nothing but the parse: the log stays the only source of truth. */
#ifndef OH_HANDOFF_H
#define OH_HANDOFF_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct oh_handoff oh_handoff;

/* Holds at most MAX_ENTRIES events and MAX_BYTES of their text; the oldest
 * go first. NULL on allocation failure. */
oh_handoff *oh_handoff_new(size_t max_entries, size_t max_bytes);
void oh_handoff_free(oh_handoff *h);

/* Leaves EV (takes the reference; NULL-safe) as the parsed form of TEXT
 * (LEN bytes, copied: exactly what is about to be appended). Call it before
 * the append, and do not touch EV afterwards: the taker modifies it.
 * When EV is shared with anything else, a deep copy of it is left instead
 * (the caller's references stay its own). Returns false (and releases EV)
 * when its text is not one json_loadb would give back as EV. */
bool oh_handoff_put(oh_handoff *h, const char *text, size_t len, json_t *ev);

/* The event left for TEXT (a new reference the caller owns), removed from
 * the handoff; NULL when there is none. */
json_t *oh_handoff_take(oh_handoff *h, const char *text, size_t len);

#endif
