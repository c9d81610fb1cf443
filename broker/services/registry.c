/* registry.c - the daemon's services, in start order (they stop in
 * reverse). Each says itself which roles run it (its wanted callback). */
#include "core/hub_int.h"
#include "services/service.h"

const struct oh_service *const oh_service_table[] = {
    &oh_service_sync,
    &oh_service_feed,
    &oh_service_dispatch,
    &oh_service_enrich,
    &oh_service_bot,
    &oh_service_router,
    &oh_service_sla,
    &oh_service_kpi,
    NULL,
};
