-- omnihub PostgreSQL store, migration 12: daily KPI aggregates, so that a
-- report over many days reads a few rows per day instead of every episode
-- (the SQLite store's migration 9 does the same with its own layout). One
-- kpi_days row per UTC day (floor(resolved_ms / 86400000)) and group key:
-- dim 'none' (key 'all'), 'channel', 'team' or 'agent' (key '': the
-- episodes without a team or agent), with the sums and counts a report needs
-- (bot_open: bot involved, no agent message, never reopened; the reopened
-- ones are counted from the rows, whose reopen window is a report's
-- parameter), and frt_hist: the first response times of the day in whole
-- seconds, pairs of big-endian uint32 (bucket, count) by bucket (int4send),
-- bucket 14400 holding every FRT of four hours or more. The kpi service's
-- write changes them in the same transaction as the episodes, the rows it
-- reads locked (a rewritten episode takes its old contribution away first).
-- A report reads whole days here, the partial days at the ends of its
-- range from kpi_episodes, and a percentile's exact value from the rows of
-- the one bucket holding it (index kpi_episodes_frt). The store fills
-- kpi_days from kpi_episodes when it opens with the first empty and the
-- second not.
CREATE TABLE kpi_days (
    dim               text COLLATE "C" NOT NULL,
    day               bigint NOT NULL,
    key               text COLLATE "C" NOT NULL,
    episodes          bigint NOT NULL,
    frt_n             bigint NOT NULL,
    frt_sum_ms        bigint NOT NULL,
    nrt_n             bigint NOT NULL,
    nrt_sum_ms        bigint NOT NULL,
    aht_n             bigint NOT NULL,
    aht_sum_ms        bigint NOT NULL,
    resolution_sum_ms bigint NOT NULL,
    sla_met           bigint NOT NULL,
    bot_involved      bigint NOT NULL,
    bot_open          bigint NOT NULL,
    frt_hist          bytea NOT NULL,
    PRIMARY KEY (dim, day, key)
);
CREATE INDEX kpi_episodes_frt ON kpi_episodes (frt_ms, channel, team, agent)
    WHERE frt_ms IS NOT NULL;
CREATE INDEX kpi_episodes_bot ON kpi_episodes (resolved_ms)
    WHERE bot_involved AND NOT agent_replied AND reopened_ms IS NOT NULL;
