/* fuzz_config.c - the YAML configuration loader on arbitrary files, with
 * every component's key table. */
#include <stdio.h>
#include <unistd.h>
#include "core/config.h"
#include "core/daemon.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/oh-fuzz-config-%d.yaml", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    char *const envp[] = {NULL};
    char err[512] = "";
    oh_config *cfg = oh_config_load(path, oh_config_tables(), envp, err, sizeof err);
    if (!cfg && !err[0]) abort();
    if (cfg) {
        /* every declared key reads back without trouble */
        for (const struct oh_config_key *const *t = oh_config_tables(); *t; t++)
            for (const struct oh_config_key *k = *t; k->key; k++) {
                if (k->type == OH_CFG_INT || k->type == OH_CFG_SIZE)
                    (void)oh_config_int(cfg, k->key);
                else if (k->type == OH_CFG_BOOL)
                    (void)oh_config_bool(cfg, k->key);
                else if (k->type == OH_CFG_LIST) {
                    const char *const *items;
                    (void)oh_config_list(cfg, k->key, &items);
                } else
                    (void)oh_config_str(cfg, k->key);
            }
    }
    oh_config_free(cfg);
    return 0;
}
