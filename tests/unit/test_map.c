/* test_map.c - the chained hash map of core/map.h: many keys through
 * growth, shared buckets and equal keys, deletion while iterating, empty,
 * binary and long keys, and how the hash spreads ids that differ little. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/map.h"
#include "core/oh.h"
#include "tap.h"

struct item {
    struct oh_map_node node;
    int v;
    char key[48];
};

static struct item *item_of(struct oh_map_node *n)
{
    return oh_map_entry(n, struct item, node);
}

static struct item *get(const oh_map *m, const char *key)
{
    return item_of(oh_map_get(m, key, strlen(key)));
}

/* N items "conv-<i>" (caller frees the array), put in order */
static struct item *put_many(oh_map *m, int n)
{
    struct item *it = calloc((size_t)n, sizeof *it);
    ck_assert_ptr_nonnull(it);
    for (int i = 0; i < n; i++) {
        it[i].v = i;
        int len = snprintf(it[i].key, sizeof it[i].key, "conv-%08d", i);
        if (oh_map_put(m, &it[i].node, it[i].key, (size_t)len)) ck_abort_msg("put %d", i);
    }
    return it;
}

/* The values in the order FIRST..NEXT gives, checked against WANT (plain
 * tests in the loops: a Check assertion costs a write). */
static void check_order(const oh_map *m, const int *want, size_t n)
{
    size_t i = 0;
    const struct oh_map_node *prev = NULL;
    for (struct oh_map_node *e = m->first; e; e = e->next, i++) {
        if (i >= n || item_of(e)->v != want[i] || e->prev != prev)
            ck_abort_msg("entry %zu: %d, want %d", i, item_of(e)->v, i < n ? want[i] : -1);
        prev = e;
    }
    ck_assert_uint_eq(i, n);
    ck_assert_uint_eq(m->n, n);
    ck_assert_ptr_eq(m->last, prev);
}

START_TEST(many_keys_and_growth)
{
    oh_map m = {0};
    ck_assert_ptr_null(get(&m, "conv-00000001")); /* empty: no buckets yet */
    enum { N = 100000 };
    size_t seen = 0;
    struct item *it = calloc(N, sizeof *it);
    ck_assert_ptr_nonnull(it);
    for (int i = 0; i < N; i++) {
        it[i].v = i;
        int len = snprintf(it[i].key, sizeof it[i].key, "conv-%08d", i);
        if (oh_map_put(&m, &it[i].node, it[i].key, (size_t)len)) ck_abort_msg("put %d", i);
        /* doubled, never more than one entry per bucket */
        if (m.nbucket < m.n || (m.nbucket & (m.nbucket - 1)) ||
            (m.nbucket != seen && seen && m.nbucket != seen * 2))
            ck_abort_msg("%zu buckets for %zu entries (were %zu)", m.nbucket, m.n, seen);
        seen = m.nbucket;
    }
    ck_assert_uint_eq(m.nbucket, 131072);
    for (int i = 0; i < N; i++) {
        char k[48];
        snprintf(k, sizeof k, "conv-%08d", i);
        if (get(&m, k) != &it[i]) ck_abort_msg("%s not found", k);
    }
    ck_assert_ptr_null(get(&m, "conv-00100000"));
    ck_assert_ptr_null(get(&m, "conv-0000000"));
    ck_assert_ptr_null(get(&m, "conv-000000011"));
    int *want = malloc(N * sizeof *want);
    for (int i = 0; i < N; i++)
        want[i] = i;
    check_order(&m, want, N);
    free(want);
    oh_map_clear(&m);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_ptr_null(m.first);
    ck_assert_ptr_null(get(&m, "conv-00000001"));
    free(it);
}
END_TEST

/* Keys that share a bucket of a 16-bucket map, and equal keys: each found,
 * equal ones oldest first, also after a growth; removing from the head,
 * the middle and the tail of a chain keeps the rest. */
START_TEST(collisions)
{
    oh_map m = {0};
    ck_assert_int_eq(oh_map_reserve(&m, 16), OH_OK);
    ck_assert_uint_eq(m.nbucket, 16);
    struct item it[6] = {{.v = 0}};
    int found = 0;
    uint64_t want = oh_map_hash("k0", 2) & 15;
    for (int i = 0; found < 4 && i < 10000; i++) { /* four keys of bucket WANT */
        char k[16];
        int len = snprintf(k, sizeof k, "k%d", i);
        if ((oh_map_hash(k, (size_t)len) & 15) != want) continue;
        memcpy(it[found].key, k, (size_t)len + 1);
        it[found].v = found;
        found++;
    }
    ck_assert_int_eq(found, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(oh_map_put(&m, &it[i].node, it[i].key, strlen(it[i].key)), OH_OK);
    /* two more under the key of it[1] */
    for (int i = 4; i < 6; i++) {
        memcpy(it[i].key, it[1].key, sizeof it[i].key);
        it[i].v = i;
        ck_assert_int_eq(oh_map_put(&m, &it[i].node, it[i].key, strlen(it[i].key)), OH_OK);
    }
    ck_assert_uint_eq(m.nbucket, 16);
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_eq(get(&m, it[i].key), &it[i]);
    oh_map_del(&m, &it[2].node); /* the middle */
    ck_assert_ptr_null(get(&m, it[2].key));
    ck_assert_ptr_eq(get(&m, it[3].key), &it[3]);
    ck_assert_ptr_eq(get(&m, it[0].key), &it[0]);
    ck_assert_int_eq(oh_map_reserve(&m, 1000), OH_OK); /* grown: chains rebuilt */
    ck_assert_uint_eq(m.nbucket, 1024);
    ck_assert_ptr_eq(get(&m, it[1].key), &it[1]); /* the oldest of the equal keys */
    oh_map_del(&m, &it[1].node);
    ck_assert_ptr_eq(get(&m, it[1].key), &it[4]);
    oh_map_del(&m, &it[4].node);
    ck_assert_ptr_eq(get(&m, it[1].key), &it[5]);
    oh_map_del(&m, &it[5].node);
    ck_assert_ptr_null(get(&m, it[1].key));
    oh_map_del(&m, &it[0].node); /* the head */
    ck_assert_ptr_eq(get(&m, it[3].key), &it[3]);
    int left[] = {3};
    check_order(&m, left, 1);
    oh_map_del(&m, &it[3].node); /* the last one */
    ck_assert_ptr_null(m.first);
    ck_assert_ptr_null(m.last);
    ck_assert_ptr_null(get(&m, it[3].key));
    ck_assert_int_eq(oh_map_reserve(&m, 8), OH_OK); /* never shrinks */
    ck_assert_uint_eq(m.nbucket, 1024);
    oh_map_clear(&m);
}
END_TEST

/* Every other entry removed while walking FIRST..NEXT, then the rest put
 * back: the order is that of the puts, lookups agree. */
START_TEST(delete_while_iterating)
{
    oh_map m = {0};
    enum { N = 5000 };
    struct item *it = put_many(&m, N);
    for (struct oh_map_node *e = m.first, *next; e; e = next) {
        next = e->next;
        if (item_of(e)->v % 2) oh_map_del(&m, e);
    }
    int want[N];
    for (int i = 0; i < N / 2; i++)
        want[i] = 2 * i;
    check_order(&m, want, N / 2);
    for (int i = 0; i < N; i++)
        if (get(&m, it[i].key) != (i % 2 ? NULL : &it[i])) ck_abort_msg("%s", it[i].key);
    /* the removed come back at the end, a removed key is a new one */
    for (int i = 1; i < N; i += 2)
        if (oh_map_put(&m, &it[i].node, it[i].key, strlen(it[i].key))) ck_abort_msg("put %d", i);
    for (int i = 0; i < N / 2; i++)
        want[N / 2 + i] = 2 * i + 1;
    check_order(&m, want, N);
    for (int i = 0; i < N; i++)
        if (get(&m, it[i].key) != &it[i]) ck_abort_msg("%s", it[i].key);
    /* all of them, the walk's own entry each time */
    for (struct oh_map_node *e = m.first, *next; e; e = next) {
        next = e->next;
        oh_map_del(&m, e);
    }
    check_order(&m, NULL, 0);
    ck_assert_ptr_null(get(&m, it[0].key));
    oh_map_clear(&m);
    free(it);
}
END_TEST

/* The empty key, keys with NUL bytes, and prefixes of one another are
 * different keys; bytes compare, not C strings. */
START_TEST(empty_and_binary_keys)
{
    oh_map m = {0};
    static const char bytes[] = "ab\0cd\0\0";
    const size_t lens[] = {0, 1, 2, 3, 4, 5, 6, 7};
    struct item it[8];
    for (int i = 0; i < 8; i++) {
        it[i].v = i;
        ck_assert_int_eq(oh_map_put(&m, &it[i].node, bytes, lens[i]), OH_OK);
    }
    for (int i = 0; i < 8; i++)
        ck_assert_ptr_eq(item_of(oh_map_get(&m, bytes, lens[i])), &it[i]);
    ck_assert_ptr_null(oh_map_get(&m, "ab\0cd\0\0\0", 8));
    ck_assert_ptr_null(oh_map_get(&m, "ab\0ce", 5));
    ck_assert_ptr_null(oh_map_get(&m, "b", 1));
    oh_map_del(&m, &it[0].node);
    ck_assert_ptr_null(oh_map_get(&m, "", 0));
    ck_assert_ptr_eq(item_of(oh_map_get(&m, "a", 1)), &it[1]);
    oh_map_clear(&m);
}
END_TEST

/* Keys of 64 KB differing in one byte (first, middle, last), and keys of
 * every length up to 300 made of the same byte. */
START_TEST(long_keys)
{
    oh_map m = {0};
    enum { LEN = 65536 };
    char *k[3];
    struct oh_map_node nodes[3], runs[301];
    const size_t at[] = {0, LEN / 2 + 3, LEN - 1};
    for (int i = 0; i < 3; i++) {
        k[i] = malloc(LEN);
        memset(k[i], 'x', LEN);
        k[i][at[i]] = 'y';
        ck_assert_int_eq(oh_map_put(&m, &nodes[i], k[i], LEN), OH_OK);
    }
    char *probe = malloc(LEN);
    memset(probe, 'x', LEN);
    ck_assert_ptr_null(oh_map_get(&m, probe, LEN));
    for (int i = 0; i < 3; i++) {
        probe[at[i]] = 'y';
        ck_assert_ptr_eq(oh_map_get(&m, probe, LEN), &nodes[i]);
        ck_assert_ptr_null(oh_map_get(&m, probe, LEN - 1));
        probe[at[i]] = 'x';
    }
    for (size_t n = 0; n <= 300; n++)
        ck_assert_int_eq(oh_map_put(&m, &runs[n], probe, n), OH_OK);
    for (size_t n = 0; n <= 300; n++)
        ck_assert_ptr_eq(oh_map_get(&m, probe, n), &runs[n]);
    ck_assert_uint_eq(m.n, 304);
    oh_map_clear(&m);
    for (int i = 0; i < 3; i++)
        free(k[i]);
    free(probe);
}
END_TEST

/* Keys of every length up to 40 that differ only in their last byte land
 * in many buckets: the bucket is the hash's low bits, and every byte of a
 * word or of the tail must reach them. */
START_TEST(hash_spreads_near_keys)
{
    for (size_t len = 1; len <= 40; len++) {
        char k[64];
        memset(k, 'c', sizeof k);
        bool used[1024] = {false};
        int distinct = 0;
        for (int i = 0; i < 256; i++) {
            k[len - 1] = (char)i; /* only the last byte differs */
            size_t b = (size_t)(oh_map_hash(k, len) & 1023);
            distinct += !used[b];
            used[b] = true;
        }
        /* 256 random picks of 1,024 buckets fill about 226 */
        ck_assert_msg(distinct > 200, "length %zu: %d buckets of 256 keys", len, distinct);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("map");
    TCase *t = tcase_create("map");
    tcase_add_test(t, many_keys_and_growth);
    tcase_add_test(t, collisions);
    tcase_add_test(t, delete_while_iterating);
    tcase_add_test(t, empty_and_binary_keys);
    tcase_add_test(t, long_keys);
    tcase_add_test(t, hash_spreads_near_keys);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
