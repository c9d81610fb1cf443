-- omnihub PostgreSQL store, migration 6: the knowledge base (shard 0, like
-- kv). One row per help article; version starts at 1 and grows by one with
-- each PUT of the id. tags is a JSON array of strings. The daemon ranks
-- articles in memory (broker/core/kb.c), the same on both backends.
CREATE TABLE kb_articles (
    id         text COLLATE "C" PRIMARY KEY,
    version    bigint NOT NULL,
    title      text NOT NULL,
    body       text NOT NULL,
    locale     text NOT NULL,
    tags       text NOT NULL,
    updated_ms bigint NOT NULL
);
