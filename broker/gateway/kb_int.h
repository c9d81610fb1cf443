/* kb_int.h - shared by kb_api.c (articles, search, canned responses, the
 * routes) and suggest_api.c (suggestions with the LLM, the bot report). */
#ifndef OH_GATEWAY_KB_INT_H
#define OH_GATEWAY_KB_INT_H

#include "gateway/gateway_int.h"
#include "core/kb.h"

/* suggest_api.c (kb_api.c calls it, never the other way round): */
/* [{id, title, score, snippet}] of HITS. New reference. */
json_t *gw_kb_hits_json(const struct oh_kb_hit *hits, size_t n);

/* GET /v1/conversations/{id}/suggestions and GET
 * /v1/reports/bot for an authenticated agent (service thread). */
void gw_suggestions(struct req *r, const char *conv);
void gw_report_bot(struct req *r);
/* Whether the LLM is configured (ai.llm_url). */
bool gw_is_llm(const struct oh_gateway *gw);
/* The LLM's thread pool (ai.llm_url set): init from gw_kb_init, drain
 * (finishes queued calls) before the gateway's work queue is freed. */
int gw_suggest_init(struct oh_gateway *gw, char *err, size_t errlen);
void gw_suggest_drain(struct oh_gateway *gw);

#endif
