-- omnihub SQLite store, migration 6: KPIs. One row per finished conversation
-- episode, written by the kpi service with its group's position in the same
-- transaction (a replay rewrites the same rows). Reports aggregate the
-- episodes resolved in a time range: the index on resolved_ms serves every
-- group_by, the one on (agent, resolved_ms) an agent's own report. Times in
-- ms since the epoch; NULL: none (no agent reply, never assigned, not
-- reopened).
CREATE TABLE kpi_episodes (
    conversation_id TEXT NOT NULL,
    episode         INTEGER NOT NULL,
    channel         TEXT NOT NULL,
    agent           TEXT,
    team            TEXT,
    start_ms        INTEGER NOT NULL,
    resolved_ms     INTEGER NOT NULL,
    frt_ms          INTEGER,
    bot_frt_ms      INTEGER,
    nrt_sum_ms      INTEGER NOT NULL,
    nrt_count       INTEGER NOT NULL,
    aht_ms          INTEGER,
    reopened_ms     INTEGER,
    breached        INTEGER NOT NULL,
    bot_involved    INTEGER NOT NULL,
    agent_replied   INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, episode)
);
CREATE INDEX kpi_episodes_resolved ON kpi_episodes (resolved_ms);
CREATE INDEX kpi_episodes_agent ON kpi_episodes (agent, resolved_ms);
