-- omnihub SQLite store, migration 12: nothing. The PostgreSQL store's
-- migration 12 adds its daily KPI aggregates, which this store has had since
-- its migration 9. This file keeps both backends' migrations numbered alike.
SELECT 1;
