-- omnihub SQLite store, migration 4: the desk's conversation state, projected
-- from the conversation's latest omnihub.conversation.updated event (status,
-- assignee, team, priority, labels, snooze, episode), a preview of its last
-- message, a store-wide change number (rev) for inbox resumption, and the
-- outcomes of state commands (PATCH, claim) that the gateway answers from.
-- '' means "none" for assignee and team.
ALTER TABLE conversations ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
ALTER TABLE conversations ADD COLUMN assignee TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN team TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal';
ALTER TABLE conversations ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
ALTER TABLE conversations ADD COLUMN snoozed_until_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN episode INTEGER NOT NULL DEFAULT 1;
ALTER TABLE conversations ADD COLUMN state_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN last_direction TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN last_kind TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN last_text TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN last_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
CREATE INDEX conversations_rev ON conversations (rev);
CREATE INDEX conversations_snoozed ON conversations (snoozed_until_ms)
    WHERE status = 'snoozed';
CREATE TABLE command_results (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    code            INTEGER NOT NULL,
    body            TEXT NOT NULL,
    created_ms      INTEGER NOT NULL
);
CREATE INDEX command_results_created ON command_results (created_ms);
