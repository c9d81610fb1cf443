-- omnihub SQLite store, migration 5: the agent inbox. The one-row table revs
-- holds the store-wide change number: every materialize transaction that
-- touches conversations takes the next one and writes it into their rev
-- (inbox resumption: "every conversation whose rev is after C"). msg_fts is
-- the full-text index (FTS5, contentless: only the index is stored) over
-- message texts and email subjects; its rowid is the history row's rowid.
-- The list pages on (created_ms, id), an immutable key.
CREATE TABLE revs (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    rev INTEGER NOT NULL
);
INSERT INTO revs (id, rev) SELECT 1, coalesce(max(rev), 0) FROM conversations;
CREATE VIRTUAL TABLE msg_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2');
CREATE INDEX conversations_created ON conversations (created_ms, id);
