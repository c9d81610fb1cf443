/* config_keys.c - the keys of the core (gateway, auth, sync, dispatch) and
 * the table of every key table: the log and the store declare theirs in
 * log.c and store.c, connectors in their vtables. */
#include "core/config.h"
#include "log/log.h"
#include "store/store.h"
#include "core/daemon.h"

const struct oh_config_key oh_core_keys[] = {
    {"role", OH_CFG_STR, "all", "which services this process runs: all, or a comma-separated list of gateway, sync, dispatch, enrich, bot, router, kpi"},
    {"data_dir", OH_CFG_STR, "./omnihub-data", "directory of the embedded log and store"},
    {"http.listen", OH_CFG_STR, "127.0.0.1:8080", "HTTP and WebSocket listener, host:port"},
    {"http.admin_listen", OH_CFG_STR, NULL,
     "a second listener for /readyz and /metrics (then off http.listen), host:port"},
    {"http.max_body", OH_CFG_SIZE, "1m", "largest accepted request body (413 above)"},
    {"http.max_page", OH_CFG_SIZE, "1m",
     "bytes of events in one history page, at most (a page holds at least one event)"},
    {"http.timeout", OH_CFG_INT, "30", "seconds a request may take to arrive in full, and an idle keep-alive connection is kept"},
    {"http.rate_limit", OH_CFG_INT, "0", "requests per second per client address, 0 = off"},
    {"http.rate_limit_token", OH_CFG_INT, "0", "requests per second per bearer token, 0 = off"},
    {"http.ca_file", OH_CFG_STR, NULL, "PEM file of the certificate authorities outbound HTTPS trusts (providers' APIs, media, JWKS, LLM), read once at start; unset: libcurl's bundle"},
    {"http.static_dir", OH_CFG_STR, NULL, "directory served under /app/ (the example chat page)"},
    {"http.workspace_dir", OH_CFG_STR, OH_DEFAULT_WORKSPACE,
     "directory served under /workspace/ (the agent workspace's built files; \"\" = off)"},
    {"auth.jwt_secret", OH_CFG_SECRET, NULL, "HS256 secret of client and agent bearer tokens"},
    {"auth.jwks_file", OH_CFG_STR, NULL, "JWKS document of RS256/ES256 token keys (by kid)"},
    {"auth.issuer", OH_CFG_STR, NULL, "required iss of bearer tokens (unset: not checked)"},
    {"auth.audience", OH_CFG_STR, NULL, "required aud of bearer tokens (unset: not checked)"},
    {"logging.level", OH_CFG_STR, "info", "debug|info|warn|error"},
    {"sync.batch", OH_CFG_INT, "512", "events materialized per store transaction, at most"},
    {"sync.adopt_log", OH_CFG_BOOL, "false",
     "for one start: consume a log that is not the one the store consumed (see operations.md)"},
    {"contacts.enabled", OH_CFG_BOOL, "true",
     "give every new conversation a contact (one person across channels, linked on verified "
     "identifiers); off: a conversation's contact_id is the channel's contact id"},
    {"contacts.default_region", OH_CFG_STR, NULL,
     "ISO 3166 region (e.g. DE) of phone numbers written without a country code; unset: such "
     "numbers are not compared"},
    {"dispatch.max_attempts", OH_CFG_INT, "8",
     "send attempts before a transient failure is final (0: retried until sent); a connector "
     "declaring retry_until_sent retries until sent whatever this says"},
    {"dispatch.backoff_ms", OH_CFG_INT, "500", "first retry delay; doubles, with jitter"},
    {"dispatch.backoff_max_ms", OH_CFG_INT, "60000", "largest retry delay"},
    {"dispatch.workers", OH_CFG_INT, "4", "send threads (a conversation's replies: one at a time, in order)"},
    {"services.linger_ms", OH_CFG_INT, "10",
     "a timeline consumer that caught up (dispatch, enrich, bot, router, sla, kpi) waits this "
     "long after a batch before reading again, taking what came meanwhile in one batch: fewer "
     "wake-ups under load, at most this much delay (0: off; at most 1000)"},
    {"triage.enabled", OH_CFG_BOOL, "true",
     "score every customer message (omnihub.message.enriched) and raise priorities (role enrich)"},
    {"triage.inline", OH_CFG_BOOL, "true",
     "where one process runs sync and enrich, sync scores each customer message in the batch "
     "that stores it (false: the enrich service does, from the timeline)"},
    {"ws.max_frame", OH_CFG_SIZE, "64k", "largest accepted WebSocket message"},
    {"ws.max_queue", OH_CFG_SIZE, "1m", "bytes queued to a client before it is closed as slow"},
    {"ws.rate", OH_CFG_INT, "50", "client messages per second per connection"},
    {"ws.ping_interval", OH_CFG_INT, "30", "seconds between server pings"},
    {"ws.idle_timeout", OH_CFG_INT, "120", "seconds without any client frame before close"},
    {"signals.presence_refresh_ms", OH_CFG_INT, "10000",
     "with Kafka: how often a gateway repeats its agents' presence to the others, which forget "
     "it after three periods unheard (a gateway killed -9)"},
    {"routing.capacity", OH_CFG_INT, "5",
     "open conversations an agent is assigned at most (GET /v1/agents shows it)"},
    {"kb.max_articles", OH_CFG_INT, "50000", "knowledge-base articles kept at most (PUT of a new id: 409 above)"},
    {"ai.llm_url", OH_CFG_STR, NULL,
     "an OpenAI-compatible chat-completions URL (.../v1/chat/completions); unset: no LLM"},
    {"ai.llm_model", OH_CFG_STR, NULL, "the model named in each LLM request (required with ai.llm_url)"},
    {"ai.llm_api_key", OH_CFG_SECRET, NULL, "bearer key of the LLM endpoint (unset: none sent)"},
    {"ai.llm_timeout_ms", OH_CFG_INT, "8000",
     "an LLM answer later than this is dropped: the suggestions fall back to the articles"},
    {"bot.enabled", OH_CFG_BOOL, "false",
     "new conversations start in status bot and the bot answers from the knowledge base"},
    {"bot.max_turns", OH_CFG_INT, "3", "bot answers in a conversation before it hands off"},
    {"bot.min_confidence_pct", OH_CFG_INT, "70",
     "retrieval confidence (percent) the bot needs to answer; below it asks again, then hands off"},
    {"bot.reopen_window_s", OH_CFG_INT, "86400",
     "a resolved conversation re-opened within this many seconds does not count as resolved by the bot"},
    {"routing.enabled", OH_CFG_BOOL, "true",
     "the router assigns open, unassigned conversations to online agents (false: claims only)"},
    {"routing.offline_grace_s", OH_CFG_INT, "60",
     "seconds an agent may be offline before their open conversations are requeued"},
    {"sla.enabled", OH_CFG_BOOL, "true", "SLA clocks run and breaches are recorded"},
    {"sla.frt_s.urgent", OH_CFG_INT, "30", "first response target of urgent conversations (s)"},
    {"sla.frt_s.high", OH_CFG_INT, "60", "first response target of high conversations (s)"},
    {"sla.frt_s.normal", OH_CFG_INT, "300", "first response target of normal conversations (s)"},
    {"sla.frt_s.low", OH_CFG_INT, "3600", "first response target of low conversations (s)"},
    {"sla.nrt_s.urgent", OH_CFG_INT, "30", "next response target of urgent conversations (s)"},
    {"sla.nrt_s.high", OH_CFG_INT, "60", "next response target of high conversations (s)"},
    {"sla.nrt_s.normal", OH_CFG_INT, "300", "next response target of normal conversations (s)"},
    {"sla.nrt_s.low", OH_CFG_INT, "3600", "next response target of low conversations (s)"},
    {"sla.save_ms", OH_CFG_INT, "200",
     "the clocks are saved (and the group's position committed) at most this often (ms)"},
    {NULL, 0, NULL, NULL},
};



#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/connector.h"

/* "<name>.enabled" for every connector, built once. */
static struct oh_config_key enabled_keys[64];
static char enabled_names[64][80];

const struct oh_config_key *const *oh_config_tables(void)
{
    static const struct oh_config_key *tables[80];
    if (tables[0]) return tables;
    size_t n = 0, k = 0;
    tables[n++] = oh_core_keys;
    tables[n++] = oh_log_keys;
    tables[n++] = oh_store_keys;
    for (const struct oh_connector *const *c = oh_connectors; *c && k < 62; c++, k++) {
        snprintf(enabled_names[k], sizeof enabled_names[k], "%s.enabled", (*c)->name);
        enabled_keys[k] = (struct oh_config_key){
            enabled_names[k], OH_CFG_BOOL, (*c)->enabled_by_default ? "true" : NULL,
            (*c)->enabled_by_default ? "run this connector"
                                     : "run this connector (default: when configured)"};
        if ((*c)->config_keys) tables[n++] = (*c)->config_keys;
    }
    tables[n++] = enabled_keys;
    tables[n] = NULL;
    return tables;
}
