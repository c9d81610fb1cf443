/* presence.c - the agent directory of a gateway: who is known, with how
 * many devices online or away here and what other gateways said of them; a
 * sorted array under one mutex (agents are few next to messages, and every
 * change is a WebSocket message). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/presence.h"

/* What one other gateway said of an agent, until when it counts. */
struct remote {
    char origin[OH_PRESENCE_ORIGIN_MAX];
    enum oh_presence_status status;
    int64_t until_ms;
};

struct entry {
    struct oh_agent_info info;
    int online, away;   /* connections here in each state */
    struct remote *rem; /* the other gateways where the agent is not offline */
    int nrem;
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
    for (int i = 0; i < p->n; i++)
        free(p->e[i].rem);
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

/* Forgets the agent offline (with no connection here or elsewhere) the
 * longest; false when every known agent is connected. With mu held. */
static bool evict(oh_presence *p)
{
    int victim = -1;
    for (int i = 0; i < p->n; i++)
        if (!p->e[i].info.devices && !p->e[i].nrem &&
            (victim < 0 || p->e[i].info.since_ms < p->e[victim].info.since_ms))
            victim = i;
    if (victim < 0) return false;
    free(p->e[victim].rem);
    memmove(&p->e[victim], &p->e[victim + 1], (size_t)(p->n - victim - 1) * sizeof *p->e);
    p->n--;
    return true;
}

static enum oh_presence_status here(const struct entry *e)
{
    return e->online ? OH_PRESENCE_ONLINE : e->away ? OH_PRESENCE_AWAY : OH_PRESENCE_OFFLINE;
}

/* online > away > offline, the order of the enum */
static enum oh_presence_status aggregate(const struct entry *e)
{
    enum oh_presence_status s = here(e);
    for (int i = 0; i < e->nrem; i++)
        if (e->rem[i].status > s) s = e->rem[i].status;
    return s;
}

/* The entry of AGENT, made when unknown; -1 when there is no room. With mu
 * held. */
static int known(oh_presence *p, const char *agent, int64_t now_ms)
{
    int i = find(p, agent);
    if (i >= 0) return i;
    if (p->n >= p->max && !evict(p)) return -1;
    i = find(p, agent); /* eviction moved the insertion point */
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        struct entry *ne = realloc(p->e, (size_t)cap * sizeof *ne);
        if (!ne) return -1;
        p->e = ne;
        p->cap = cap;
    }
    i = -i - 1;
    memmove(&p->e[i + 1], &p->e[i], (size_t)(p->n - i) * sizeof *p->e);
    memset(&p->e[i], 0, sizeof p->e[i]);
    snprintf(p->e[i].info.id, sizeof p->e[i].info.id, "%s", agent);
    p->e[i].info.since_ms = now_ms;
    p->n++;
    return i;
}

void oh_presence_connect(oh_presence *p, const struct oh_principal *who, int64_t now_ms)
{
    pthread_mutex_lock(&p->mu);
    int i = known(p, who->sub, now_ms);
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
        e->info.here = here(e);
        *now = e->info.status = aggregate(e);
        if (*now != before) {
            e->info.since_ms = now_ms;
            changed = true;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return changed;
}

bool oh_presence_remote(oh_presence *p, const char *origin, const struct oh_agent_info *a,
                        int64_t now_ms, int64_t until_ms, enum oh_presence_status *now)
{
    bool changed = false;
    pthread_mutex_lock(&p->mu);
    int i = known(p, a->id, now_ms);
    if (i >= 0) {
        struct entry *e = &p->e[i];
        enum oh_presence_status before = aggregate(e);
        if (a->name[0]) memcpy(e->info.name, a->name, sizeof e->info.name);
        if (a->nteams) {
            memcpy(e->info.teams, a->teams, sizeof e->info.teams);
            e->info.nteams = a->nteams;
        }
        int k = 0;
        while (k < e->nrem && strcmp(e->rem[k].origin, origin) != 0)
            k++;
        if (a->here == OH_PRESENCE_OFFLINE) { /* offline there: nothing to keep */
            if (k < e->nrem) e->rem[k] = e->rem[--e->nrem];
        } else {
            if (k == e->nrem) {
                struct remote *nr = realloc(e->rem, (size_t)(e->nrem + 1) * sizeof *nr);
                if (nr) {
                    e->rem = nr;
                    snprintf(nr[k].origin, sizeof nr[k].origin, "%s", origin);
                    e->nrem++;
                }
            }
            if (k < e->nrem) {
                e->rem[k].status = a->here;
                e->rem[k].until_ms = until_ms;
            }
        }
        *now = e->info.status = aggregate(e);
        if (*now != before) {
            e->info.since_ms = now_ms;
            changed = true;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return changed;
}

void oh_presence_forget(oh_presence *p, const char *origin, int64_t now_ms,
                        oh_presence_changed_fn fn, void *opaque)
{
    struct change {
        char id[sizeof((struct oh_agent_info *)0)->id];
        enum oh_presence_status now;
    } *ch = NULL;
    int nch = 0, cap = 0;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        struct entry *e = &p->e[i];
        if (!e->nrem) continue;
        enum oh_presence_status before = aggregate(e);
        for (int k = 0; k < e->nrem;)
            if (e->rem[k].until_ms <= now_ms || (origin && strcmp(e->rem[k].origin, origin) == 0))
                e->rem[k] = e->rem[--e->nrem];
            else
                k++;
        e->info.status = aggregate(e);
        if (e->info.status == before) continue;
        e->info.since_ms = now_ms;
        if (!fn) continue;
        if (nch == cap) {
            int nc = cap ? cap * 2 : 16;
            struct change *m = realloc(ch, (size_t)nc * sizeof *m);
            if (!m) continue; /* the change holds; only its telling is lost */
            ch = m;
            cap = nc;
        }
        memcpy(ch[nch].id, e->info.id, sizeof ch[nch].id);
        ch[nch++].now = e->info.status;
    }
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < nch; i++)
        fn(opaque, ch[i].id, ch[i].now);
    free(ch);
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
