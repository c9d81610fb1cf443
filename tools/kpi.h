/* kpi.h - `omnihubctl kpi`: the KPI report of a running daemon as a table. */
#ifndef OH_TOOLS_KPI_H
#define OH_TOOLS_KPI_H

#include <jansson.h>
#include <stdio.h>

/* Writes the rows of a GET /v1/reports/kpis answer (REPORT, borrowed) as
 * an aligned table to OUT. 0, or -1 when REPORT has no rows array. */
int oh_kpi_table(const json_t *report, FILE *out);

/* The command: argv after "kpi". Exit status 0, 1 when the daemon refused
 * (the error on stderr), 2 for usage errors or no answer. */
int oh_kpi_cmd(int argc, char **argv);

#endif
