/* slaclock.h - the SLA clocks of one conversation (CONTRACT part 2, SLA and
 * KPIs) as a pure state machine over its timeline: a first response clock
 * per episode, a next response clock per customer message after a reply,
 * paused while pending or snoozed. The SLA service (services/sla.c) feeds
 * it, saves it and decides the breaches; the unit tests drive it directly. */
#ifndef OH_SLACLOCK_H
#define OH_SLACLOCK_H

#include <jansson.h>
#include "core/json_dump.h"
#include "core/oh.h"

#define OH_SLA_BREACHES_MAX 64 /* kinds listed in one episode's "breached" */

/* The targets by priority (urgent, high, normal, low), in ms. */
struct oh_sla_targets {
    int64_t frt_ms[4], nrt_ms[4];
};

/* The two clocks: index of oh_slaclock.clk, value of its br[]. */
enum oh_sla_kind { OH_SLA_FRT, OH_SLA_NRT };
extern const char *const oh_sla_kind_name[2]; /* "frt", "nrt" */

/* One clock. */
struct oh_sla_clock {
    bool on;      /* started, not stopped since */
    bool b;       /* breached */
    int64_t s, p; /* start, ms paused so far */
    int64_t ps;   /* paused since (0: running) */
    int64_t f;    /* the caller's: when its breach was decided (0: not);
                     zero again when the clock starts */
};

/* A conversation's clocks. Saved as the JSON object (oh_slaclock_write's
 * "v") {ch, ac, ep, st, pr, out, fd, nn, br, frt, nrt, pt, seq}, a clock as
 * {s, p, ps, b[, f]} or null: the shape the jansson document of the clocks
 * had before this struct, so either version reads what the other saved. */
struct oh_slaclock {
    char *ch, *ac;                   /* channel, account: owned, one allocation */
    int64_t ep;                      /* episode */
    char st[16], pr[16];             /* status, priority (the reducer's values, at most 8 bytes) */
    bool out;                        /* the last message the customer saw was a reply */
    bool fd;                         /* the first response was given */
    int64_t nn;                      /* next response clocks started */
    uint8_t br[OH_SLA_BREACHES_MAX]; /* kinds breached in the episode, in order */
    int nbr;
    struct oh_sla_clock clk[2]; /* by enum oh_sla_kind */
    int64_t pt, seq;            /* the caller's (timeline partition, last event applied) */
};

/* Fills C for a new conversation: open, normal, episode 1, no clock.
 * OH_EINVAL when CHANNEL or ACCOUNT (NULL: "") is not valid UTF-8 without
 * NUL, OH_ENOMEM. Free with oh_slaclock_clear(). */
int oh_slaclock_init(struct oh_slaclock *c, const char *channel, const char *account);
/* Frees what C owns; C may be zeroed or cleared already. */
void oh_slaclock_clear(struct oh_slaclock *c);

/* An inbound message sequenced at T: a resolved conversation starts a new
 * episode, a pending or snoozed one runs again; the episode's first
 * starts the first response clock, one after a reply a next response
 * clock. */
void oh_slaclock_inbound(struct oh_slaclock *c, int64_t t);
/* An outbound message the customer sees (not a private note) at T; BY_AGENT
 * when an agent wrote it: it stops the running clocks. */
void oh_slaclock_outbound(struct oh_slaclock *c, bool by_agent, int64_t t);
/* A conversation.updated at T: EPISODE, STATUS and PRIORITY from its
 * data.state (NULL or "": unchanged), REASON its reason (a
 * "sla_breach:<kind>" marks that clock breached). */
void oh_slaclock_updated(struct oh_slaclock *c, int64_t episode, const char *status,
                         const char *priority, const char *reason, int64_t t);

/* The deadline of clock KIND in ms, 0 when none runs (none started,
 * stopped, or paused). */
int64_t oh_slaclock_due(const struct oh_slaclock *c, enum oh_sla_kind kind,
                        const struct oh_sla_targets *tg);
/* {first_response_due, next_response_due, breached} (RFC 3339 or null).
 * New reference. */
json_t *oh_slaclock_public(const struct oh_slaclock *c, const struct oh_sla_targets *tg);

/* Appends the saved text of C to OUT, {"sla": oh_slaclock_public(), "v":
 * the clocks}, written directly: what json_pack and oh_json_dump made of
 * the jansson clocks, in the same order. 0, or OH_ENOMEM. */
int oh_slaclock_write(const struct oh_slaclock *c, const struct oh_sla_targets *tg,
                      struct oh_json_buf *out);
/* Fills C from TEXT, a saved text of either version (its "v"); a member
 * missing reads as zero, false or "". OH_EINVAL when TEXT is no such
 * document, OH_ENOMEM. Free with oh_slaclock_clear(). */
int oh_slaclock_read(struct oh_slaclock *c, const char *text);

#endif
