-- omnihub PostgreSQL store, migration 10: the inbox list's common filters read
-- their rows directly. The list walks (created_ms, id) newest first and
-- checks each row's filters: status and priority together match one row in
-- twelve, an agent's own conversations one in a hundred or none at all (an
-- empty "mine" view walked every conversation of the store). Each index
-- below is led by equality filters and ends with the list's order, so such a
-- page is its first rows; the planner picks by its statistics (a status
-- alone, four rows in ten, stays on the walk). search_tsv stops using GIN's
-- pending list: every q query read the whole list (up to 4 MB, unsorted)
-- besides the index proper; each message now goes into the index as it is
-- written.
CREATE INDEX conversations_status ON conversations (status, priority, created_ms, id);
CREATE INDEX conversations_assignee ON conversations (assignee, created_ms, id);
ALTER INDEX search_tsv SET (fastupdate = off);
SELECT gin_clean_pending_list('search_tsv'::regclass);
