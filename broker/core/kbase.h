/* kbase.h - the running knowledge base: the current ranking index (kb.h)
 * behind a pointer that a rebuild swaps, so that a query never waits for a
 * rebuild and a rebuild never frees an index a query still reads. */
#ifndef OH_CORE_KBASE_H
#define OH_CORE_KBASE_H

#include <stdint.h>
#include "core/kb.h"

typedef struct oh_kbase oh_kbase;

/* An empty knowledge base (no index: queries find nothing). NULL when out
 * of memory. Caller frees with oh_kbase_free(). */
oh_kbase *oh_kbase_new(void);
/* Frees KB and its index; no query may hold it. NULL is fine. */
void oh_kbase_free(oh_kbase *kb);

/* Makes INDEX (takes ownership; NULL = empty) the current index, built from
 * the store as it stood at GEN: an index built from an older state than the
 * current one (two rebuilds racing) is dropped instead. The old index is
 * freed once the last query holding it lets go. Any thread. */
void oh_kbase_swap(oh_kbase *kb, oh_kb *index, uint64_t gen);

/* A generation number for a rebuild about to read the store: pass it to
 * oh_kbase_swap(). Any thread. */
uint64_t oh_kbase_next_gen(oh_kbase *kb);

/* The current index, NULL when there is none, held until oh_kbase_put(REF)
 * (REF receives the hold; pass it back even when NULL is returned). */
const oh_kb *oh_kbase_get(oh_kbase *kb, void **ref);
void oh_kbase_put(void *ref);

#endif
