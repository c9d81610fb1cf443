-- omnihub SQLite store, migration 1 (schemas/sql/embed.py embeds it into the
-- binary; tests/unit/test_store.c checks the embedded text is this file).
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS conversations (
    id              TEXT PRIMARY KEY,
    channel         TEXT NOT NULL,
    account         TEXT NOT NULL,
    contact_id      TEXT NOT NULL DEFAULT '',
    contact_name    TEXT NOT NULL DEFAULT '',
    head            INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    last_inbound_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations (updated_ms);
CREATE TABLE IF NOT EXISTS history (
    conversation_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    event_id        TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    src_partition   INTEGER NOT NULL,
    src_offset      INTEGER NOT NULL,
    ts_ms           INTEGER NOT NULL,
    json            TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX IF NOT EXISTS history_source ON history (src_partition, src_offset);
CREATE TABLE IF NOT EXISTS refs (
    channel         TEXT NOT NULL,
    account         TEXT NOT NULL,
    ref             TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    PRIMARY KEY (channel, account, ref)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS msg_state (
    conversation_id TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    state           TEXT NOT NULL,
    rank            INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, message_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (
    conversation_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    device          TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id, device)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    grp       TEXT NOT NULL,
    topic     TEXT NOT NULL,
    part      INTEGER NOT NULL,
    next      INTEGER NOT NULL DEFAULT 0,
    published INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (grp, topic, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    ns    TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (ns, key)
);
