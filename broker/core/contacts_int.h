/* contacts_int.h - what contacts.c and contacts_ident.c share. */
#ifndef OH_CONTACTS_INT_H
#define OH_CONTACTS_INT_H

#include <stdbool.h>
#include "core/contacts.h"

/* ID's value in its type's form (a phone in E.164 with REGION for national
 * numbers, an email case-folded); false when it does not normalize. */
bool oh_contact_normalize(struct oh_contact_ident *id, const char *region);
/* An identifier type: 1..63 of [A-Za-z0-9:._-]. */
bool oh_contact_type_ok(const char *t);
/* An identifier value: valid UTF-8 without control characters, under
 * OH_CONTACT_VALUE_MAX bytes. */
bool oh_contact_value_ok(const char *v);

#endif
