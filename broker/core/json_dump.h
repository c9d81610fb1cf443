/* json_dump.h - compact JSON text of a jansson value, byte for byte what
 * json_dumps(v, JSON_COMPACT) writes, in a fraction of its instructions;
 * and the order of an array's members, for text that lists them sorted. */
#ifndef OH_JSON_DUMP_H
#define OH_JSON_DUMP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Serializes V (an object or array; any value when the caller accepts
 * JSON_ENCODE_ANY output). Returns a malloc'd NUL-terminated string the
 * caller frees, with its length in *LEN when LEN is not NULL; NULL where
 * json_dumps would fail (a string that is not valid UTF-8, a cycle too deep)
 * or on allocation failure. Reals are written by jansson itself. */
char *oh_json_dump(const json_t *v, size_t *len);

/* A growing text buffer for writers that emit JSON without building jansson
 * values (services/sla.c's saved clocks): P holds LEN bytes, not
 * NUL-terminated; the caller frees P. Zero-initialized it is empty. */
struct oh_json_buf {
    char *p;
    size_t len, cap;
};
/* Each appends to B and returns 0, or -1 on allocation failure (B keeps
 * what it held). N bytes of S as they are: */
int oh_json_buf_put(struct oh_json_buf *b, const char *s, size_t n);
/* S (N bytes) as a JSON string escaped as oh_json_dump escapes it; -1 also
 * when S is not valid UTF-8: */
int oh_json_buf_string(struct oh_json_buf *b, const char *s, size_t n);
/* V in decimal: */
int oh_json_buf_int(struct oh_json_buf *b, int64_t v);

/* Sorts array ARR in place by CMP, which compares two members as qsort
 * hands them (json_t *const *). OH_ENOMEM, ARR unchanged, out of memory. */
int oh_json_array_sort(json_t *arr, int (*cmp)(const void *, const void *));

#endif
