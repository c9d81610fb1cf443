-- omnihub SQLite store, migration 9: daily KPI aggregates. One row per UTC
-- day (resolved_ms / 86400000) and group key: dim 'none' (key 'all'),
-- 'channel', 'team' or 'agent' (key '': the episodes without a team or
-- agent). Written by the kpi service with the episodes, in the same
-- transaction: a rewritten episode takes its old contribution away first.
-- Sums and counts as a report needs them (bot_open: bot involved, no agent
-- message, never reopened; the reopened ones are counted from the rows,
-- whose reopen window is a report's parameter), and frt_hist: the first
-- response times of the day in whole seconds, pairs of little-endian
-- uint32 (bucket, count) by bucket, bucket 14400 holding every FRT of four
-- hours or more. Reports read whole days here and the partial days at the
-- ends of their range from kpi_episodes; a percentile's exact value is read
-- from the rows of the one bucket holding it (index kpi_episodes_frt). The
-- store fills kpi_days from kpi_episodes when it opens with the first empty
-- and the second not.
CREATE TABLE kpi_days (
    dim               TEXT NOT NULL,
    day               INTEGER NOT NULL,
    key               TEXT NOT NULL,
    episodes          INTEGER NOT NULL,
    frt_n             INTEGER NOT NULL,
    frt_sum_ms        INTEGER NOT NULL,
    nrt_n             INTEGER NOT NULL,
    nrt_sum_ms        INTEGER NOT NULL,
    aht_n             INTEGER NOT NULL,
    aht_sum_ms        INTEGER NOT NULL,
    resolution_sum_ms INTEGER NOT NULL,
    sla_met           INTEGER NOT NULL,
    bot_involved      INTEGER NOT NULL,
    bot_open          INTEGER NOT NULL,
    frt_hist          BLOB NOT NULL,
    PRIMARY KEY (dim, day, key)
) WITHOUT ROWID;
CREATE INDEX kpi_episodes_frt ON kpi_episodes (frt_ms, channel, team, agent)
    WHERE frt_ms IS NOT NULL;
CREATE INDEX kpi_episodes_bot ON kpi_episodes (resolved_ms)
    WHERE bot_involved = 1 AND agent_replied = 0 AND reopened_ms IS NOT NULL;
