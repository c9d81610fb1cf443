/* test_regress.c - inputs the fuzzers once broke on, replayed through the
 * same parsers on every run (the ASan+UBSan build aborts on a relapse). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/connector.h"
#include "core/event.h"
#include "tap.h"

/* Every file in tests/fuzz/seeds/normalize_<channel>/ goes through that
 * connector's normalize; success or a clean refusal are both fine. */
START_TEST(normalize_seeds)
{
    int replayed = 0;
    for (const struct oh_connector *const *c = oh_connectors; *c; c++) {
        if (!(*c)->normalize) continue;
        char rel[256];
        snprintf(rel, sizeof rel, "tests/fuzz/seeds/normalize_%s", (*c)->name);
        char *dir = oh_test_src(rel);
        DIR *d = opendir(dir);
        for (struct dirent *e; d && (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            char *path = NULL;
            if (asprintf(&path, "%s/%s", dir, e->d_name) < 0) abort();
            size_t len;
            char *body = oh_test_read(path, &len);
            ck_assert_msg(body != NULL, "cannot read %s", path);
            struct oh_event_list out = {0};
            struct oh_norm_ctx nc = {NULL, 1700000000000};
            char err[512];
            int rc = (*c)->normalize(&nc, (const uint8_t *)body, len, &out, err, sizeof err);
            ck_assert_msg(rc == OH_OK || rc == OH_EINVAL, "%s: %s", path, oh_strerror(rc));
            for (size_t i = 0; i < out.n; i++)
                ck_assert_msg(oh_event_validate(out.ev[i], err, sizeof err) == OH_OK, "%s: %s",
                              path, err);
            oh_event_list_clear(&out);
            free(body);
            free(path);
            replayed++;
        }
        if (d) closedir(d);
        free(dir);
    }
    ck_assert_int_ge(replayed, 2);
}
END_TEST

START_TEST(times_out_of_range)
{
    char out[32];
    ck_assert_int_eq(oh_time_from_seconds(1700000000), 1700000000000);
    ck_assert_int_eq(oh_time_from_seconds(0), 0);
    ck_assert_int_eq(oh_time_from_seconds(-5), 0);
    ck_assert_int_eq(oh_time_from_seconds(INT64_MAX), 0);
    oh_time_rfc3339(out, INT64_MAX);
    ck_assert_str_eq(out, "9999-12-31T23:59:59.999Z");
    oh_time_rfc3339(out, -1);
    ck_assert_str_eq(out, "1970-01-01T00:00:00.000Z");
}
END_TEST

START_TEST(sanitize)
{
    char s[] = "ok \xc3\xa9 \xff cut\xe2\x82";
    oh_utf8_sanitize(s);
    ck_assert_str_eq(s, "ok \xc3\xa9 ? cut??");
    ck_assert(oh_utf8_valid(s, strlen(s)));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("regress");
    TCase *tc = tcase_create("regress");
    tcase_add_test(tc, normalize_seeds);
    tcase_add_test(tc, times_out_of_range);
    tcase_add_test(tc, sanitize);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
