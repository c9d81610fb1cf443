/* presence.h - the agents a gateway knows (connected now or since it
 * started) and their presence, aggregated over their devices: online while
 * any device is online, away while any is away and none online, offline
 * otherwise. Devices on other gateways count through what those gateways
 * say (services/signals.c), each word valid for a time. In memory, per
 * process. Thread-safe. */
#ifndef OH_PRESENCE_H
#define OH_PRESENCE_H

#include "core/auth.h"

enum oh_presence_status { OH_PRESENCE_OFFLINE, OH_PRESENCE_AWAY, OH_PRESENCE_ONLINE };

/* What is known of one agent (a copy; the claims of their latest token). */
struct oh_agent_info {
    char id[128];
    char name[OH_AUTH_NAME_MAX];
    char teams[OH_AUTH_TEAMS_MAX][OH_AUTH_TEAM_MAX];
    int nteams;
    enum oh_presence_status status; /* over every gateway */
    int64_t since_ms;               /* when status last changed (or the agent became known) */
    int devices;                    /* connections now open on this gateway */
    enum oh_presence_status here;   /* over this gateway's connections alone */
};

/* the longest id of a gateway (its origin on the signals topic) */
#define OH_PRESENCE_ORIGIN_MAX 40

typedef struct oh_presence oh_presence;

/* An empty directory holding at most MAX agents (when full, the agent
 * offline the longest is forgotten to make room). Caller frees with
 * oh_presence_free(). NULL when out of memory. */
oh_presence *oh_presence_new(int max);
void oh_presence_free(oh_presence *p);

/* A connection of agent WHO opened: the agent is known (name and teams
 * taken from WHO); the connection counts as offline until it says
 * otherwise. */
void oh_presence_connect(oh_presence *p, const struct oh_principal *who, int64_t now_ms);
/* One connection of AGENT moved from FROM to TO (a closing connection:
 * TO = offline, and GONE true). True when the agent's aggregate status
 * changed; *NOW gets it. */
bool oh_presence_move(oh_presence *p, const char *agent, enum oh_presence_status from,
                      enum oh_presence_status to, bool gone, int64_t now_ms,
                      enum oh_presence_status *now);
/* Gateway ORIGIN says A->id is A->here there with A->devices connections
 * (A->name and A->teams, when A->nteams or A->name[0], replace what is
 * known); it counts until UNTIL_MS unless said again. An unknown agent
 * becomes known. True when the aggregate status changed; *NOW gets it. */
bool oh_presence_remote(oh_presence *p, const char *origin, const struct oh_agent_info *a,
                        int64_t now_ms, int64_t until_ms, enum oh_presence_status *now);
/* Called for each agent whose aggregate status changed to NOW. */
typedef void (*oh_presence_changed_fn)(void *opaque, const char *agent,
                                       enum oh_presence_status now);
/* Forgets what gateways said that counted until NOW_MS or before, and
 * (ORIGIN not NULL) everything ORIGIN said. FN (may be NULL) is called
 * after the lock is released. */
void oh_presence_forget(oh_presence *p, const char *origin, int64_t now_ms,
                        oh_presence_changed_fn fn, void *opaque);
/* OH_ENOTFOUND when AGENT is unknown. */
int oh_presence_get(oh_presence *p, const char *agent, struct oh_agent_info *out);
/* Calls FN for each known agent, ordered by id, with a copy taken under
 * the lock (FN may call other oh_presence functions). */
typedef int (*oh_presence_fn)(void *opaque, const struct oh_agent_info *a);
int oh_presence_each(oh_presence *p, oh_presence_fn fn, void *opaque);

/* "online" | "away" | "offline"; parse: OH_EINVAL on anything else. */
const char *oh_presence_name(enum oh_presence_status s);
int oh_presence_parse(const char *s, enum oh_presence_status *out);

#endif
