-- omnihub SQLite store, migration 2: read cursors keyed on the role as well
-- as the sub (an agent and a customer may share a sub). Rows written before
-- keep role '' and stay readable by either role.
CREATE TABLE cursors_new (
    conversation_id TEXT NOT NULL,
    role            TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    device          TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id, role, device)
) WITHOUT ROWID;
INSERT INTO cursors_new (conversation_id, role, user_id, device, seq)
    SELECT conversation_id, '', user_id, device, seq FROM cursors;
DROP TABLE cursors;
ALTER TABLE cursors_new RENAME TO cursors;
