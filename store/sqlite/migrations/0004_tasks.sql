-- 0004: the tasks capability: tracker app installs, request key chains,
-- launch codes, permits, tasks, runs, encrypted artifacts (the row holds
-- the wrapped DEK; the blob store holds the ciphertext) and project
-- indexes (path, SHA-256 and summary; never content). Tokens are stored
-- only as SHA-256 hashes. Nothing caches these tables: no cache epoch
-- trigger.

-- At most one live (not revoked) install of a name per org.
CREATE TABLE tracker_installs (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	name       TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER
) STRICT;
CREATE UNIQUE INDEX tracker_installs_hash ON tracker_installs (hash);
CREATE UNIQUE INDEX tracker_installs_live_name ON tracker_installs (org_id, name) WHERE revoked_at IS NULL;
CREATE INDEX tracker_installs_org ON tracker_installs (org_id, created_at);

CREATE TABLE request_keys (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	install_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER
) STRICT;
CREATE UNIQUE INDEX request_keys_hash ON request_keys (hash);

CREATE TABLE launch_codes (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	install_id TEXT NOT NULL,
	project_id TEXT NOT NULL,
	task_id    TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER
) STRICT;
CREATE UNIQUE INDEX launch_codes_hash ON launch_codes (hash);

CREATE TABLE permits (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	project_id TEXT NOT NULL,
	task_id    TEXT NOT NULL,
	launch_id  TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX permits_hash ON permits (hash);

CREATE TABLE tasks (
	org_id       TEXT NOT NULL,
	project_id   TEXT NOT NULL,
	task_id      TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	completed_at INTEGER,
	PRIMARY KEY (org_id, project_id, task_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE runs (
	id           TEXT PRIMARY KEY,
	org_id       TEXT NOT NULL,
	project_id   TEXT NOT NULL,
	task_id      TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	completed_at INTEGER,
	FOREIGN KEY (org_id, project_id, task_id) REFERENCES tasks (org_id, project_id, task_id)
) STRICT;
CREATE INDEX runs_task ON runs (org_id, project_id, task_id);

-- At most one live (not replaced) artifact of a name per run. A replaced
-- or expired artifact is purged: blob first, then row.
CREATE TABLE artifacts (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL,
	project_id  TEXT NOT NULL,
	task_id     TEXT NOT NULL,
	run_id      TEXT NOT NULL REFERENCES runs (id),
	name        TEXT NOT NULL,
	kind        TEXT NOT NULL DEFAULT '',
	size        INTEGER NOT NULL,
	sha256      TEXT NOT NULL,
	blob_key    TEXT NOT NULL,
	wrapped_dek BLOB NOT NULL,
	keeper_id   TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER,
	replaced_at INTEGER
) STRICT;
CREATE UNIQUE INDEX artifacts_live_name ON artifacts (run_id, name) WHERE replaced_at IS NULL;
CREATE INDEX artifacts_task ON artifacts (org_id, project_id, task_id);
CREATE INDEX artifacts_expires ON artifacts (expires_at);
CREATE INDEX artifacts_replaced ON artifacts (replaced_at) WHERE replaced_at IS NOT NULL;

CREATE TABLE index_files (
	org_id     TEXT NOT NULL,
	project_id TEXT NOT NULL,
	index_id   TEXT NOT NULL,
	path       TEXT NOT NULL,
	sha256     TEXT NOT NULL,
	summary    TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (org_id, project_id, index_id, path)
) STRICT, WITHOUT ROWID;
