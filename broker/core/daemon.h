/* daemon.h - start-up pieces shared by omnihubd and the tools: the key
 * tables of every component. */
#ifndef OH_DAEMON_H
#define OH_DAEMON_H

#include "core/config.h"

extern const struct oh_config_key oh_core_keys[];
/* http.workspace_dir's default: where the package installs the workspace */
#define OH_DEFAULT_WORKSPACE "/usr/share/omnihub/workspace"

/* NULL-terminated list of every key table: core, log, store, and each
 * registered connector's (with its implicit "<name>.enabled"). */
const struct oh_config_key *const *oh_config_tables(void);

#endif
