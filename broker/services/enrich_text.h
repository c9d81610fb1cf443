/* enrich_text.h - what triage makes of one scored message, for both places
 * that score (the enrich service, services/enrich.c, and sync's inline
 * triage, services/sync_state.c), so the two make the same events: the
 * omnihub.message.enriched event, built twice over (as a jansson tree, which
 * the handoff gives sync, and as its record text written directly, which
 * the hub appends without dumping the tree; the two are equal byte for
 * byte), the raise_priority command, and the triage metrics. */
#ifndef OH_SERVICES_ENRICH_TEXT_H
#define OH_SERVICES_ENRICH_TEXT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "core/json_dump.h"
#include "core/triage.h"

/* Sentiments are written with three decimals: -1000..1000 thousandths. */
#define OH_ENRICHED_MILLI_MAX 1000

/* One scored message: its strings are NUL-terminated UTF-8, borrowed. */
struct oh_enriched {
    const char *id;      /* the enriched event's own id */
    const char *message; /* the scored message's event id */
    const char *conv, *channel, *account;
    const struct oh_triage *t;
    long milli;      /* the sentiment in thousandths: oh_enriched_milli(t->sentiment) */
    int64_t time_ms; /* the event's time, not 0 */
};

/* Whether sync scores customers' messages inline in HUB's process
 * (triage.enabled, triage.inline, and the process runs both sync and the
 * role enrich). */
struct oh_hub;
bool oh_triage_inline(const struct oh_hub *hub);

/* The triage metrics, for whoever scores (the enrich service, or sync
 * with triage.inline): described once at start; then one count per scored
 * message (omnihub_triage_messages_total{priority}), and one per raise
 * asked for (RAISE: omnihub_triage_raises_total). */
void oh_triage_metrics_describe(void);
void oh_triage_metrics_count(enum oh_triage_priority p, bool raise);

/* The raise_priority command triage asks for when message MESSAGE (its
 * event id) of CONV is more urgent (P) than its conversation, at TIME_MS (0:
 * now): its id from the message's alone, so the enrich service and sync's
 * inline triage make the same command and either one's repeat is dropped.
 * Strings borrowed, valid UTF-8 (from a checked event). NULL when out of
 * memory. */
json_t *oh_triage_raise_cmd(const char *message, const char *conv, const char *channel,
                            const char *account, enum oh_triage_priority p, int64_t time_ms);

/* SENTIMENT rounded to thousandths: the scorer's resolution, a stable text. */
long oh_enriched_milli(double sentiment);

/* The event of X (a new reference), NULL when out of memory. */
json_t *oh_enriched_event(const struct oh_enriched *x);

/* Where records are written: json_dump's growing buffer, and jansson's text
 * of each sentiment, made on first use (printing a double costs thousands of
 * instructions). Zero it to start; oh_enriched_writer_free() at the end. */
struct oh_enriched_writer {
    struct oh_json_buf buf;
    char reals[2 * OH_ENRICHED_MILLI_MAX + 1][32];
};

/* Appends the record text of X's event to W->buf: exactly oh_json_dump() of
 * oh_enriched_event(X). 0, or OH_ENOMEM (W's length is then unchanged). */
int oh_enriched_text(struct oh_enriched_writer *w, const struct oh_enriched *x);

/* Frees W's buffer (W itself is the caller's). */
void oh_enriched_writer_free(struct oh_enriched_writer *w);

#endif
