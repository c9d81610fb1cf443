-- omnihub PostgreSQL store, migration 5: the agent inbox. The one-row table
-- revs holds this shard's change number: every materialize statement that
-- touches conversations takes the next one (the row stays locked until the
-- commit, so rev order is commit order) and writes it into their rev (inbox
-- resumption: "every conversation whose rev is after C"). search is the
-- full-text index over message texts and email subjects (text search
-- configuration 'simple': no stemming, no stop words, since one inbox holds
-- every language). The list pages on (created_ms, id), an immutable key.
CREATE TABLE revs (
    id  integer PRIMARY KEY CHECK (id = 1),
    rev bigint NOT NULL
);
INSERT INTO revs (id, rev) SELECT 1, coalesce(max(rev), 0) FROM conversations;
CREATE TABLE search (
    conversation_id text COLLATE "C" NOT NULL,
    seq             bigint NOT NULL,
    tsv             tsvector NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX search_tsv ON search USING gin (tsv);
CREATE INDEX conversations_created ON conversations (created_ms, id);
CREATE INDEX conversations_labels ON conversations USING gin (labels);
