-- omnihub PostgreSQL store, migration 1 (schemas/sql/embed.py embeds it into the
-- binary; tests/unit/test_store.c checks the embedded text is this file).
-- Every shard gets the same schema; see docs/operations.md for what lives where.
CREATE TABLE meta (
    key   text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE conversations (
    id              text COLLATE "C" PRIMARY KEY,
    channel         text NOT NULL,
    account         text NOT NULL,
    contact_id      text NOT NULL DEFAULT '',
    contact_name    text NOT NULL DEFAULT '',
    head            bigint NOT NULL DEFAULT 0,
    created_ms      bigint NOT NULL,
    updated_ms      bigint NOT NULL,
    last_inbound_ms bigint NOT NULL DEFAULT 0
);
CREATE INDEX conversations_updated ON conversations (updated_ms DESC, id DESC);
CREATE TABLE history (
    conversation_id text COLLATE "C" NOT NULL,
    seq             bigint NOT NULL,
    event_id        text COLLATE "C" NOT NULL UNIQUE,
    type            text NOT NULL,
    src_partition   integer NOT NULL,
    src_offset      bigint NOT NULL,
    ts_ms           bigint NOT NULL,
    json            text NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX history_source ON history (src_partition, src_offset);
CREATE TABLE refs (
    channel         text COLLATE "C" NOT NULL,
    account         text COLLATE "C" NOT NULL,
    ref             text COLLATE "C" NOT NULL,
    conversation_id text NOT NULL,
    message_id      text NOT NULL,
    PRIMARY KEY (channel, account, ref)
);
CREATE TABLE msg_state (
    conversation_id text COLLATE "C" NOT NULL,
    message_id      text COLLATE "C" NOT NULL,
    state           text NOT NULL,
    rank            integer NOT NULL,
    PRIMARY KEY (conversation_id, message_id)
);
CREATE TABLE cursors (
    conversation_id text COLLATE "C" NOT NULL,
    user_id         text COLLATE "C" NOT NULL,
    device          text COLLATE "C" NOT NULL,
    seq             bigint NOT NULL,
    PRIMARY KEY (conversation_id, user_id, device)
);
CREATE TABLE positions (
    grp       text COLLATE "C" NOT NULL,
    topic     text COLLATE "C" NOT NULL,
    part      integer NOT NULL,
    next      bigint NOT NULL DEFAULT 0,
    published bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (grp, topic, part)
);
CREATE TABLE kv (
    ns    text COLLATE "C" NOT NULL,
    key   text COLLATE "C" NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (ns, key)
);
