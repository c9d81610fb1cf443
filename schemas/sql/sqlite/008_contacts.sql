-- omnihub SQLite store, migration 8: contacts (one person across channels).
-- The contact directory itself lives in the kv space (namespace
-- "omnihub.contacts", core/contacts.h: contacts, identifiers, links of
-- conversations); contact_ref is the contact a conversation belongs to now
-- (its root after merges), '' while none is known (contacts.enabled off, or
-- a conversation from before contacts): the list filters on it (with
-- contacts on; off, it filters on contact_id).
ALTER TABLE conversations ADD COLUMN contact_ref TEXT NOT NULL DEFAULT '';
CREATE INDEX conversations_contact_ref ON conversations (contact_ref);
