-- omnihub PostgreSQL store, migration 8: contacts (one person across
-- channels). The contact directory itself lives in the kv table of shard 0
-- (namespace "omnihub.contacts", core/contacts.h: contacts, identifiers,
-- links of conversations); contact_ref is the contact a conversation belongs
-- to now (its root after merges), '' while none is known: the list filters
-- on it (with contacts on; off, on contact_id).
ALTER TABLE conversations ADD COLUMN contact_ref text COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX conversations_contact_ref ON conversations (contact_ref);
