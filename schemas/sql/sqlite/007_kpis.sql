-- omnihub SQLite store, migration 7: KPIs. One row per finished conversation
-- episode, written by the kpi service with its group's position in the same
-- transaction (a replay rewrites the same rows: unique on conversation and
-- episode). Reports read the episodes resolved in a time range in one pass:
-- the table is clustered on resolved_ms (WITHOUT ROWID), so that range is
-- contiguous; an agent's own report goes through (agent, resolved_ms). Times
-- in ms since the epoch; NULL: none (no agent reply, never assigned, not
-- reopened).
CREATE TABLE kpi_episodes (
    resolved_ms     INTEGER NOT NULL,
    conversation_id TEXT NOT NULL,
    episode         INTEGER NOT NULL,
    channel         TEXT NOT NULL,
    agent           TEXT,
    team            TEXT,
    start_ms        INTEGER NOT NULL,
    frt_ms          INTEGER,
    bot_frt_ms      INTEGER,
    nrt_sum_ms      INTEGER NOT NULL,
    nrt_count       INTEGER NOT NULL,
    aht_ms          INTEGER,
    reopened_ms     INTEGER,
    breached        INTEGER NOT NULL,
    bot_involved    INTEGER NOT NULL,
    agent_replied   INTEGER NOT NULL,
    PRIMARY KEY (resolved_ms, conversation_id, episode)
) WITHOUT ROWID;
CREATE UNIQUE INDEX kpi_episodes_id ON kpi_episodes (conversation_id, episode);
CREATE INDEX kpi_episodes_agent ON kpi_episodes (agent, resolved_ms);
