-- omnihub SQLite store, migration 11: nothing. The PostgreSQL store's
-- migration 11 adds the shard list and the placement directory; a SQLite
-- store is one file, never sharded. This file keeps both backends'
-- migrations numbered alike.
SELECT 1;
