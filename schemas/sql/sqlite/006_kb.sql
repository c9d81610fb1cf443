-- omnihub SQLite store, migration 6: the knowledge base. One row per help
-- article; version starts at 1 and grows by one with each PUT of the id.
-- tags is a JSON array of strings. The daemon ranks articles in memory
-- (broker/core/kb.c), so no full-text index is kept here.
CREATE TABLE kb_articles (
    id         TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    locale     TEXT NOT NULL,
    tags       TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
