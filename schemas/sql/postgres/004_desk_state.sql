-- omnihub PostgreSQL store, migration 4: the desk's conversation state, projected
-- from the conversation's latest omnihub.conversation.updated event (status,
-- assignee, team, priority, labels, snooze, episode), a preview of its last
-- message, a store-wide change number (rev) for inbox resumption, and the
-- outcomes of state commands (PATCH, claim) that the gateway answers from.
-- '' means "none" for assignee and team.
ALTER TABLE conversations ADD COLUMN status text NOT NULL DEFAULT 'open';
ALTER TABLE conversations ADD COLUMN assignee text NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN team text NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN priority text NOT NULL DEFAULT 'normal';
ALTER TABLE conversations ADD COLUMN labels jsonb NOT NULL DEFAULT '[]';
ALTER TABLE conversations ADD COLUMN snoozed_until_ms bigint NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN episode bigint NOT NULL DEFAULT 1;
ALTER TABLE conversations ADD COLUMN state_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN last_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN last_direction text NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN last_kind text NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN last_text text NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN last_ms bigint NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN rev bigint NOT NULL DEFAULT 0;
CREATE INDEX conversations_rev ON conversations (rev);
CREATE INDEX conversations_snoozed ON conversations (snoozed_until_ms)
    WHERE status = 'snoozed';
CREATE TABLE command_results (
    id              text COLLATE "C" PRIMARY KEY,
    conversation_id text NOT NULL,
    code            integer NOT NULL,
    body            text NOT NULL,
    created_ms      bigint NOT NULL
);
CREATE INDEX command_results_created ON command_results (created_ms);
