/* tap.c - shared scaffolding for the Check unit tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"

int oh_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

char *oh_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/omnihub-test-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(tmpl)) abort();
    return strdup(tmpl);
}

char *oh_test_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    buf[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

char *oh_test_src(const char *rel)
{
    const char *root = getenv("OMNIHUB_SOURCE_ROOT");
    char *p = NULL;
    if (asprintf(&p, "%s/%s", root ? root : ".", rel) < 0) abort();
    return p;
}
