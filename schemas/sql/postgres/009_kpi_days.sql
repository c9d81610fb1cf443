-- omnihub PostgreSQL store, migration 9: nothing yet. The SQLite store keeps
-- daily KPI aggregates (its migration 9, kpi_days); PostgreSQL reports still
-- aggregate the episode rows of their range in one statement. This file
-- keeps both backends' migrations numbered alike.
SELECT 1;
