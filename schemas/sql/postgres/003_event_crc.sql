-- omnihub PostgreSQL store, migration 3: a CRC-32C per stored event, checked
-- before the event is served (oh_store_text_crc in broker/store/store.c). NULL in
-- the rows stored before: those are served unverified.
ALTER TABLE history ADD COLUMN crc bigint;
