/* metrics.h - process-wide Prometheus counters, gauges and histograms.
 * Thread-safe; series are created on first use. */
#ifndef OH_METRICS_H
#define OH_METRICS_H

#include "core/oh.h"

/* LABELS is the Prometheus label body without braces, e.g.
 * "channel=\"<name>\",result=\"ok\"", or "" for none. Names follow
 * omnihub_<area>_<what>[_total|_seconds]. */
void oh_metrics_inc(const char *name, const char *labels, uint64_t by);
void oh_metrics_set(const char *name, const char *labels, double value);
/* Observes a duration in seconds into a histogram with fixed buckets. */
void oh_metrics_observe(const char *name, const char *labels, double seconds);
/* Gives histogram family NAME the upper bounds BOUNDS (N ascending values,
 * 1..14; borrowed for the process's life, like NAME) instead of the
 * latency buckets (0.5 ms .. 10 s); call before its first observation.
 * OH_EINVAL when N is out of range or the table of such families is full. */
int oh_metrics_buckets(const char *name, const double *bounds, size_t n);
/* Optional HELP text for a family. */
void oh_metrics_describe(const char *name, const char *help);
/* Reads a counter or gauge (tests); 0 when absent. */
double oh_metrics_value(const char *name, const char *labels);
/* Prometheus text exposition; caller frees. */
char *oh_metrics_render(size_t *len);

#endif
