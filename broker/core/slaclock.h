/* slaclock.h - the SLA clocks of one conversation (CONTRACT part 2, SLA and
 * KPIs) as a pure state machine over its timeline: a first response clock
 * per episode, a next response clock per customer message after a reply,
 * paused while pending or snoozed. The SLA service (services/sla.c) feeds
 * it, saves it and decides the breaches; the unit tests drive it directly. */
#ifndef OH_SLACLOCK_H
#define OH_SLACLOCK_H

#include <jansson.h>
#include "core/oh.h"

#define OH_SLA_BREACHES_MAX 64 /* kinds listed in one episode's "breached" */

/* The targets by priority (urgent, high, normal, low), in ms. */
struct oh_sla_targets {
    int64_t frt_ms[4], nrt_ms[4];
};

/* A conversation's clocks, a JSON object the caller saves as it is: {ch,
 * ac, ep (episode), st (status), pr (priority), out (the last message the
 * customer saw was a reply), fd (the first response was given), nn (next
 * response clocks started), br (kinds breached in the episode), frt, nrt};
 * a clock: {s: start ms, p: ms paused so far, ps: paused since (0:
 * running), b: breached}. Callers may keep members of their own beside
 * these. New reference: open, normal, episode 1, no clock. */
json_t *oh_slaclock_new(const char *channel, const char *account);

/* An inbound message sequenced at T: a resolved conversation starts a new
 * episode, a pending or snoozed one runs again; the episode's first
 * starts the first response clock, one after a reply a next response
 * clock. */
void oh_slaclock_inbound(json_t *c, int64_t t);
/* An outbound message the customer sees (not a private note) at T; BY_AGENT
 * when an agent wrote it: it stops the running clocks. */
void oh_slaclock_outbound(json_t *c, bool by_agent, int64_t t);
/* A conversation.updated at T: STATE its data.state, REASON its reason (a
 * "sla_breach:<kind>" marks that clock breached). */
void oh_slaclock_updated(json_t *c, const json_t *state, const char *reason, int64_t t);

/* The deadline of clock KIND ("frt" | "nrt") in ms, 0 when none runs (none
 * started, stopped, or paused). */
int64_t oh_slaclock_due(const json_t *c, const char *kind, const struct oh_sla_targets *tg);
/* {first_response_due, next_response_due, breached} (RFC 3339 or null).
 * New reference. */
json_t *oh_slaclock_public(const json_t *c, const struct oh_sla_targets *tg);

#endif
