/* presence.c - the agent directory of a gateway: who is known, with how
 * many devices online or away; a sorted array under one mutex (agents are
 * few next to messages, and every change is a WebSocket message). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/presence.h"

struct entry {
    struct oh_agent_info info;
    int online, away; /* connections in each state */
};

struct oh_presence {
    pthread_mutex_t mu;
    struct entry *e; /* sorted by info.id */
    int n, cap, max;
};

oh_presence *oh_presence_new(int max)
{
    oh_presence *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    p->max = max > 0 ? max : 1;
    return p;
}

void oh_presence_free(oh_presence *p)
{
    if (!p) return;
    pthread_mutex_destroy(&p->mu);
    free(p->e);
    free(p);
}

/* Index of AGENT, or -(insertion point) - 1. With mu held. */
static int find(const oh_presence *p, const char *agent)
{
    int lo = 0, hi = p->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2, c = strcmp(p->e[mid].info.id, agent);
        if (c == 0) return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -lo - 1;
}

/* Forgets the agent offline (with no connection) the longest; false when
 * every known agent is connected. With mu held. */
static bool evict(oh_presence *p)
{
    int victim = -1;
    for (int i = 0; i < p->n; i++)
        if (!p->e[i].info.devices &&
            (victim < 0 || p->e[i].info.since_ms < p->e[victim].info.since_ms))
            victim = i;
    if (victim < 0) return false;
    memmove(&p->e[victim], &p->e[victim + 1], (size_t)(p->n - victim - 1) * sizeof *p->e);
    p->n--;
    return true;
}

static enum oh_presence_status aggregate(const struct entry *e)
{
    return e->online ? OH_PRESENCE_ONLINE : e->away ? OH_PRESENCE_AWAY : OH_PRESENCE_OFFLINE;
}

void oh_presence_connect(oh_presence *p, const struct oh_principal *who, int64_t now_ms)
{
    pthread_mutex_lock(&p->mu);
    int i = find(p, who->sub);
    if (i < 0 && (p->n < p->max || evict(p))) {
        i = find(p, who->sub); /* eviction moved the insertion point */
        if (p->n == p->cap) {
            int cap = p->cap ? p->cap * 2 : 16;
            struct entry *ne = realloc(p->e, (size_t)cap * sizeof *ne);
            if (!ne) {
                pthread_mutex_unlock(&p->mu);
                return;
            }
            p->e = ne;
            p->cap = cap;
        }
        i = -i - 1;
        memmove(&p->e[i + 1], &p->e[i], (size_t)(p->n - i) * sizeof *p->e);
        memset(&p->e[i], 0, sizeof p->e[i]);
        snprintf(p->e[i].info.id, sizeof p->e[i].info.id, "%s", who->sub);
        p->e[i].info.since_ms = now_ms;
        p->n++;
    }
    if (i >= 0) {
        struct oh_agent_info *a = &p->e[i].info;
        /* the latest token tells who they are now */
        memcpy(a->name, who->name, sizeof a->name);
        memcpy(a->teams, who->teams, sizeof a->teams);
        a->nteams = who->nteams;
        a->devices++;
    }
    pthread_mutex_unlock(&p->mu);
}

static void count(struct entry *e, enum oh_presence_status s, int by)
{
    if (s == OH_PRESENCE_ONLINE) e->online += by;
    if (s == OH_PRESENCE_AWAY) e->away += by;
}

bool oh_presence_move(oh_presence *p, const char *agent, enum oh_presence_status from,
                      enum oh_presence_status to, bool gone, int64_t now_ms,
                      enum oh_presence_status *now)
{
    bool changed = false;
    pthread_mutex_lock(&p->mu);
    int i = find(p, agent);
    if (i >= 0) {
        struct entry *e = &p->e[i];
        enum oh_presence_status before = aggregate(e);
        count(e, from, -1);
        count(e, to, 1);
        if (gone && e->info.devices > 0) e->info.devices--;
        *now = e->info.status = aggregate(e);
        if (*now != before) {
            e->info.since_ms = now_ms;
            changed = true;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return changed;
}

int oh_presence_get(oh_presence *p, const char *agent, struct oh_agent_info *out)
{
    pthread_mutex_lock(&p->mu);
    int i = find(p, agent);
    if (i >= 0) *out = p->e[i].info;
    pthread_mutex_unlock(&p->mu);
    return i >= 0 ? OH_OK : OH_ENOTFOUND;
}

int oh_presence_each(oh_presence *p, oh_presence_fn fn, void *opaque)
{
    pthread_mutex_lock(&p->mu);
    int n = p->n;
    struct oh_agent_info *copy = n ? malloc((size_t)n * sizeof *copy) : NULL;
    for (int i = 0; copy && i < n; i++)
        copy[i] = p->e[i].info;
    pthread_mutex_unlock(&p->mu);
    if (n && !copy) return OH_ENOMEM;
    int rc = OH_OK;
    for (int i = 0; i < n && rc == OH_OK; i++)
        rc = fn(opaque, &copy[i]);
    free(copy);
    return rc > 0 ? OH_OK : rc;
}

const char *oh_presence_name(enum oh_presence_status s)
{
    return s == OH_PRESENCE_ONLINE ? "online" : s == OH_PRESENCE_AWAY ? "away" : "offline";
}

int oh_presence_parse(const char *s, enum oh_presence_status *out)
{
    if (!s) return OH_EINVAL;
    if (strcmp(s, "online") == 0)
        *out = OH_PRESENCE_ONLINE;
    else if (strcmp(s, "away") == 0)
        *out = OH_PRESENCE_AWAY;
    else if (strcmp(s, "offline") == 0)
        *out = OH_PRESENCE_OFFLINE;
    else
        return OH_EINVAL;
    return OH_OK;
}
