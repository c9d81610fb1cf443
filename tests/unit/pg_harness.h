/* pg_harness.h - a throwaway PostgreSQL server for unit tests
 * (tests/pg_server.py), or the one OMNIHUB_TEST_PG_DSN names. */
#ifndef OH_TEST_PG_HARNESS_H
#define OH_TEST_PG_HARNESS_H
#include <stdbool.h>
#include <stddef.h>

/* Starts the server (once per process); false when it cannot. */
bool oh_test_pg_start(void);
/* A fresh database on it; its DSN in OUT. */
void oh_test_pg_newdb(char *out, size_t outlen);
/* Runs SQL on DSN (a failure fails the test). */
void oh_test_pg_sql(const char *dsn, const char *sql);
/* Runs tests/pg_server.py with ARGS; its output in OUT (may be NULL). */
int oh_test_pg_helper(const char *args, char *out, size_t outlen);
/* Our server's directory (pg_server.py's restart, stop-only, ...); "" for
 * an external one. */
const char *oh_test_pg_dir(void);
/* Stops our server and removes it (an external one: drops our databases). */
void oh_test_pg_stop(void);

#endif
