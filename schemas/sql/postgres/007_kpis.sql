-- omnihub PostgreSQL store, migration 7: KPIs. One row per finished
-- conversation episode, written by the kpi service with its group's position
-- in the same statement (a replay rewrites the same rows). Like positions
-- and kv, the rows live on shard 0 (the table exists on every shard). Reports
-- aggregate the episodes resolved in a time range: the index on resolved_ms
-- serves every group_by, the one on (agent, resolved_ms) an agent's own
-- report. Times in ms since the epoch; NULL: none.
CREATE TABLE kpi_episodes (
    conversation_id text COLLATE "C" NOT NULL,
    episode         bigint NOT NULL,
    channel         text NOT NULL,
    agent           text,
    team            text,
    start_ms        bigint NOT NULL,
    resolved_ms     bigint NOT NULL,
    frt_ms          bigint,
    bot_frt_ms      bigint,
    nrt_sum_ms      bigint NOT NULL,
    nrt_count       bigint NOT NULL,
    aht_ms          bigint,
    reopened_ms     bigint,
    breached        boolean NOT NULL,
    bot_involved    boolean NOT NULL,
    agent_replied   boolean NOT NULL,
    PRIMARY KEY (conversation_id, episode)
);
CREATE INDEX kpi_episodes_resolved ON kpi_episodes (resolved_ms);
CREATE INDEX kpi_episodes_agent ON kpi_episodes (agent, resolved_ms);
