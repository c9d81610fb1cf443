/* config.h - the YAML configuration with OMNIHUB_* environment overrides.
 * Every component declares its keys in a table; unknown keys are errors. */
#ifndef OH_CONFIG_H
#define OH_CONFIG_H

#include <stddef.h>
#include "core/oh.h"

enum oh_cfg_type {
    OH_CFG_STR,    /* any string */
    OH_CFG_SECRET, /* string, never logged or printed */
    OH_CFG_INT,    /* signed integer */
    OH_CFG_BOOL,   /* true/false/yes/no/on/off/1/0 */
    OH_CFG_SIZE,   /* integer with optional k/m/g (KiB/MiB/GiB) suffix */
    OH_CFG_LIST,   /* YAML sequence of strings; env: comma separated */
};

/* One declared key. Tables end with an entry whose key is NULL. */
struct oh_config_key {
    const char *key; /* dotted: "http.listen" */
    enum oh_cfg_type type;
    const char *def;  /* default as text, NULL = unset */
    const char *help; /* one line for --help and docs */
};

/* One entry of a config map: where KEY's value goes in a connector's
 * struct. Tables end with an entry whose key is NULL. Write entries with
 * OH_CFG_FIELD("acme.timeout_ms", struct acme_conf, timeout_ms). The field's C
 * type follows the key's declared type: STR/SECRET char * (NULL when
 * unset), INT/SIZE int64_t, BOOL bool, LIST char ** (NULL-terminated, NULL
 * when empty). */
struct oh_config_field {
    const char *key;
    size_t offset;
};
#define OH_CFG_FIELD(key, type, field) {key, offsetof(type, field)}

typedef struct oh_config oh_config;

/* Loads PATH (NULL: defaults only), then applies OMNIHUB_* variables from
 * ENVP (NULL: the process environment). TABLES is a NULL-terminated array
 * of key tables; every key found must be declared in one of them.
 * Returns NULL and fills ERR with "file:line: message" on a bad file.
 * Caller frees with oh_config_free(). */
oh_config *oh_config_load(const char *path, const struct oh_config_key *const *tables,
                          char *const *envp, char *err, size_t errlen);
void oh_config_free(oh_config *cfg);

/* Accessors. Values are borrowed until oh_config_free(). A key that was
 * never declared aborts in debug builds and returns the zero value. */
const char *oh_config_str(const oh_config *cfg, const char *key); /* NULL if unset */
int64_t oh_config_int(const oh_config *cfg, const char *key);
bool oh_config_bool(const oh_config *cfg, const char *key);
/* Number of items; *items borrowed (NULL-terminated). */
size_t oh_config_list(const oh_config *cfg, const char *key, const char *const **items);
/* True when the key was given in the file or environment (not a default). */
bool oh_config_is_set(const oh_config *cfg, const char *key);
/* True when any key starting with PREFIX ("<connector>.") was given. */
bool oh_config_any_set(const oh_config *cfg, const char *prefix);

/* A config map (as Fluent Bit's config_map): fills the fields MAP names
 * in OUT from CFG, defaults included, so no default is restated in code;
 * each key's type is its declaration in KEYS. Strings and lists are
 * copies: free them with oh_config_map_free(), also after a failure.
 * OH_ENOMEM, or OH_EINVAL when MAP names a key KEYS does not declare. */
int oh_config_map(const oh_config *cfg, const struct oh_config_key *keys,
                  const struct oh_config_field *map, void *out);
/* Frees the strings and lists of OUT that MAP names; accepts OUT NULL. */
void oh_config_map_free(const struct oh_config_key *keys, const struct oh_config_field *map,
                        void *out);

/* Overrides a value after loading (tests and the dev script use it). */
int oh_config_set(oh_config *cfg, const char *key, const char *value, char *err, size_t errlen);

/* Where KEY's value came from, for error messages: "FILE:LINE",
 * "environment OMNIHUB_...", or the file's name (or "omnihubd") for a
 * default. */
void oh_config_where(const oh_config *cfg, const char *key, char *buf, size_t len);
/* The line of the file that gave KEY its value; 0 when the file did not
 * (a default, the environment, no such key). */
size_t oh_config_line(const oh_config *cfg, const char *key);

/* Calls REPORT for every OMNIHUB_* variable in ENVP (NULL: the process
 * environment) that names no declared key, with the closest key's variable
 * as SUGGESTION (or NULL). Variables of the project's own tools
 * (OMNIHUB_BUILD, OMNIHUB_TEST_*, ...) are not reported. Returns how many
 * were reported. */
size_t oh_config_unknown_env(const oh_config *cfg, char *const *envp,
                             void (*report)(const char *name, const char *suggestion, void *opaque),
                             void *opaque);

/* Parses KEY as "host:port" (host may be empty: every interface) into
 * HOST and PORT; OH_EINVAL with ERR naming the key otherwise. */
int oh_config_hostport(const oh_config *cfg, const char *key, char *host, size_t hostlen,
                       int *port, char *err, size_t errlen);

/* Requires KEY to be set; fills ERR with a start-up message otherwise. */
int oh_config_require(const oh_config *cfg, const char *key, const char *why, char *err,
                      size_t errlen);

#endif
