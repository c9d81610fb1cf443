/* registry.c - the daemon's services, in start order (they stop in
 * reverse). Adding one: its name in OH_SERVICES (its file defines
 * oh_service_<name>). Each says itself which role runs it (.role, or
 * wanted() for the built-in roles). */
#include "core/hub_int.h"
#include "services/service.h"

#define OH_SERVICES(X) X(sync) X(feed) X(signals) X(dispatch) X(enrich) X(bot) X(router) X(sla) X(kpi)

#define DECLARE(name) extern const struct oh_service oh_service_##name;
#define ENTRY(name)   &oh_service_##name,
OH_SERVICES(DECLARE)

const struct oh_service *const oh_service_table[] = {OH_SERVICES(ENTRY) NULL};
