-- omnihub PostgreSQL store, migration 11: shards added live. Both tables are
-- read and written on shard 0 only (every shard gets them, as every shard
-- gets every migration). shards lists the servers: the ring shards (those of
-- store.postgres.shards, ring = their position) over which a conversation
-- without a placement hashes, recorded once at the first start; and the
-- shards added later by `omnihubctl shard add` (ring NULL, their DSN here).
-- placements says where each conversation placed since lives; a
-- conversation created before this migration has no row and stays on its
-- ring shard. meta's 'shard' key names the shard a database is, so a
-- reordered list or a database added twice is refused.
CREATE TABLE shards (
    ord      serial PRIMARY KEY,
    name     text NOT NULL UNIQUE,
    ring     integer UNIQUE,
    dsn      text,
    added_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE placements (
    conversation_id text PRIMARY KEY,
    shard           text NOT NULL
);
