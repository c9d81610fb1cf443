/* contact_memdir.h - a contact directory (core/contacts.h) in a JSON object
 * in memory, shared by tests/unit/test_contacts.c and fuzz_contacts.c. */
#ifndef OH_CONTACT_MEMDIR_H
#define OH_CONTACT_MEMDIR_H

#include <string.h>
#include "core/contacts.h"

static int mget(void *o, const char *key, char *out, size_t len)
{
    const char *v = json_string_value(json_object_get(o, key));
    if (!v) return OH_ENOTFOUND;
    if (strlen(v) >= len) return OH_ETOOBIG;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

static int mput(void *o, const char *key, const char *value)
{
    return json_object_set_new(o, key, json_string(value)) ? OH_ENOMEM : 0;
}

static int mdel(void *o, const char *key)
{
    return json_object_del(o, key) ? OH_ENOTFOUND : 0;
}

/* Without the optional write and get_many: every put and del at once. */
static inline struct oh_contact_dir mem_dir(json_t *o)
{
    return (struct oh_contact_dir){o, mget, mput, mdel, NULL, NULL};
}

#endif
