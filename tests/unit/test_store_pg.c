/* test_store_pg.c - the store suite of test_store.c against a throwaway
 * PostgreSQL started by tests/pg_server.py (or OMNIHUB_TEST_PG_DSN). */
#define OH_TEST_PG 1
#include "test_store.c"
