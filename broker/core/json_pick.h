/* json_pick.h - a few string members of a JSON text read in one pass,
 * without building the document: for a consumer that needs a handful of
 * fields of a record it did not parse (services/enrich.c). */
#ifndef OH_JSON_PICK_H
#define OH_JSON_PICK_H

#include <stddef.h>

#define OH_JSON_PICK_MAX   16 /* picks per call */
#define OH_JSON_PICK_DEPTH 8  /* member names in a path */

struct oh_json_pick {
    /* in: member names from the top-level object joined by '.'
     * ("data.author.kind"), 1..8 names of 1..63 bytes each */
    const char *path;
    /* out: the string at PATH, decoded and NUL-terminated in the caller's
     * buffer; NULL when PATH is absent or is not a string there */
    const char *s;
    size_t len; /* out: its length in bytes (it holds no NUL) */
};

/* Reads TEXT (LEN bytes) and fills the N picks (N <= OH_JSON_PICK_MAX).
 * Returns OH_OK when json_loadb(TEXT, LEN, 0, ...) would accept TEXT (an
 * object or array; strict JSON of valid UTF-8; no "\u0000"; integers that
 * fit in 64 bits, reals that do not overflow; values at most 2048 deep;
 * nothing but whitespace after it) with each pick's string as jansson would
 * give it (of members named twice, the last counts). Otherwise OH_EINVAL
 * (also for a bad path) or OH_ENOMEM, with every pick's S NULL; OH_EINVAL
 * and the picks untouched for a bad N.
 * BUF (LEN + 1 bytes: a decoded string is never longer than its text)
 * receives the strings; it is borrowed until the picks are no longer read.
 * Pure and thread-safe; allocates only to check a real number within a
 * power of ten of overflow. */
int oh_json_pick(const char *text, size_t len, struct oh_json_pick *picks, int n, char *buf);

#endif
