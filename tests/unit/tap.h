/* tap.h - runs a Check suite with TAP output for meson's tap protocol. */
#ifndef OH_TEST_TAP_H
#define OH_TEST_TAP_H

#include <check.h>

/* Runs S (takes ownership), prints TAP on stdout; returns the exit code. */
int oh_test_run(Suite *s);
/* A fresh temporary directory (caller frees); aborts on failure. */
char *oh_test_tmpdir(void);
/* Reads a whole file (caller frees); NULL when absent. LEN may be NULL. */
char *oh_test_read(const char *path, size_t *len);
/* Path under the source tree (OMNIHUB_SOURCE_ROOT); caller frees. */
char *oh_test_src(const char *rel);

#endif
