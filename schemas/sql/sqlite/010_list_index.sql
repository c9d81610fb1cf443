-- omnihub SQLite store, migration 10: nothing. The PostgreSQL store's
-- migration 10 adds indexes for the inbox list's common filters; SQLite,
-- whose planner has no statistics here, would pick a status index for a
-- status-only filter and sort every open conversation, so its list keeps
-- walking (created_ms, id) until the same indexes are measured on it. This
-- file keeps both backends' migrations numbered alike.
SELECT 1;
