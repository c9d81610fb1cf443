/* llm.h - a reply grounded in knowledge-base articles from an
 * OpenAI-compatible chat-completions endpoint (ai.llm_*): the prompt, kept
 * so that the customer's words never become instructions, and the call. */
#ifndef OH_CORE_LLM_H
#define OH_CORE_LLM_H

#include <jansson.h>
#include <stddef.h>
#include "core/oh.h"

/* The instructions: the first (system) message of every request, the same
 * whatever the customer wrote or which articles were found. */
extern const char oh_llm_instructions[];

/* Bytes of an article's body and of the customer's text that go into a
 * prompt, at most; bytes of an answer that are kept. */
#define OH_LLM_MAX_ARTICLE  4096
#define OH_LLM_MAX_CUSTOMER 4096
#define OH_LLM_MAX_ANSWER   4000
#define OH_LLM_MAX_ARTICLES 5

/* One retrieved article for the prompt; borrowed. */
struct oh_llm_article {
    const char *id, *title, *body;
};

/* The chat-completions request body for MODEL: messages
 *   1. system: oh_llm_instructions (constant),
 *   2. system: the articles, each between <article id="..."> and
 *      </article> (cut to OH_LLM_MAX_ARTICLE bytes),
 *   3. user: the customer's text between <customer_message> and
 *      </customer_message>, with any spelling of those markers inside it
 *      defused, so it cannot end its own block; cut to OH_LLM_MAX_CUSTOMER.
 * Pure. New reference, NULL when out of memory. */
json_t *oh_llm_request(const char *model, const struct oh_llm_article *arts, size_t n,
                       const char *customer, size_t len);

struct oh_llm_conf {
    const char *url, *model, *api_key; /* api_key may be NULL */
    long timeout_ms;
};

/* Sends the request for ARTS and CUSTOMER and returns the model's answer
 * (choices[0].message.content, trimmed, at most OH_LLM_MAX_ANSWER bytes) in
 * *ANSWER (malloc'd; the caller frees it). OH_ETIMEOUT when none came in
 * CONF->timeout_ms, OH_EIO for a failed or unusable answer (ERR says
 * which). Blocks: never on the HTTP service thread. */
int oh_llm_answer(const struct oh_llm_conf *conf, const struct oh_llm_article *arts, size_t n,
                  const char *customer, size_t len, char **answer, char *err, size_t errlen);

#endif
