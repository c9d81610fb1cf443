-- omnihub PostgreSQL store, migration 2: read cursors keyed on the role as
-- well as the sub (an agent and a customer may share a sub). Rows written
-- before keep role '' and stay readable by either role.
ALTER TABLE cursors ADD COLUMN role text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE cursors DROP CONSTRAINT cursors_pkey;
ALTER TABLE cursors ADD PRIMARY KEY (conversation_id, user_id, role, device);
