/* kpi_fold.h - the KPI figures of one conversation's episodes (CONTRACT
 * part 2, SLA and KPIs), folded event by event from its sequenced history:
 * pure (events in, finished episodes out), shared by the kpi service and
 * the unit tests. */
#ifndef OH_KPI_FOLD_H
#define OH_KPI_FOLD_H

#include <jansson.h>
#include "core/oh.h"
#include "log/log.h"
#include "store/store.h"

/* One conversation as the fold leaves it after its events up to LAST_SEQ. */
struct oh_kpi_conv {
    char id[OH_ID_MAX];
    char channel[64];
    int64_t last_seq; /* the highest seq folded; older or equal ones are repeats */
    /* the desk state as the latest conversation.updated left it */
    char status[16];
    char assignee[128];
    char team[128];
    int64_t state_episode;
    /* the episode under way (IN_EPISODE), in the store's row form */
    bool in_episode;
    struct oh_store_episode cur;
    int64_t first_inbound_ms; /* -1 none yet */
    int64_t first_event_ms;
    int64_t aht_since_ms; /* open and assigned since, -1 not */
    int64_t nrt_since_ms; /* an inbound after an outbound waits since, -1 none */
    bool last_outbound;   /* the episode's latest message went out */
    /* the episode finished last: rewritten when the next one starts
     * (reopened_ms), for bot_resolved */
    bool have_prev;
    struct oh_store_episode prev;
};

/* A fresh conversation ID on CHANNEL, in the state a new conversation
 * starts in (open, nobody assigned, episode 1). */
void oh_kpi_conv_init(struct oh_kpi_conv *c, const char *id, const char *channel);

/* What folding one event produced. */
struct oh_kpi_out {
    int nrows;
    struct oh_store_episode rows[2]; /* finished or rewritten episodes, to store */
    double frt_s;                    /* >= 0: a first response was measured now */
    double handle_s;                 /* >= 0: an episode with handle time finished */
};

/* Folds sequenced event EV (borrowed) with seq SEQ into C; an event with
 * seq <= C->last_seq is a repeat and changes nothing. OUT is reset first.
 * Only messages (inbound, outbound but private notes) and
 * conversation.updated count; every other event only advances last_seq. */
void oh_kpi_fold(struct oh_kpi_conv *c, const json_t *ev, int64_t seq, struct oh_kpi_out *out);

/* The same for a timeline record from its metadata M alone (borrowed:
 * type, seq, time, author kind, internal), when they hold all the fold
 * reads of it: a message, or any repeat, on a conversation whose channel C
 * knows already. False when they do not (a conversation.updated, C's first
 * event, a record written without time): nothing changed, fold its parsed
 * body with oh_kpi_fold(). Either way C ends the same. */
bool oh_kpi_fold_meta(struct oh_kpi_conv *c, const struct oh_log_meta *m, struct oh_kpi_out *out);

/* Whether the fold wants a record of TYPE (NULL unknown: parse it). */
bool oh_kpi_wants(const char *type);

#endif
