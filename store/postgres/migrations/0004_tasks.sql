-- 0004: the tasks capability, the same as SQLite's: tracker app installs,
-- request key chains, launch codes, permits, tasks, runs, encrypted
-- artifacts (the row holds the wrapped DEK; the blob store holds the
-- ciphertext) and project indexes (path, SHA-256 and summary; never
-- content). Tokens are stored only as SHA-256 hashes. Nothing caches these
-- tables: no cache epoch trigger.

-- At most one live (not revoked) install of a name per org.
CREATE TABLE tracker_installs (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	name       TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	revoked_at BIGINT,
	ord        BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE UNIQUE INDEX tracker_installs_hash ON tracker_installs (hash);
CREATE UNIQUE INDEX tracker_installs_live_name ON tracker_installs (org_id, name) WHERE revoked_at IS NULL;
CREATE INDEX tracker_installs_org ON tracker_installs (org_id, created_at);

-- Spending a key is one conditional UPDATE of its row.
CREATE TABLE request_keys (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	install_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at    BIGINT
);
CREATE UNIQUE INDEX request_keys_hash ON request_keys (hash);

CREATE TABLE launch_codes (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	install_id TEXT NOT NULL,
	project_id TEXT NOT NULL,
	task_id    TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at    BIGINT
);
CREATE UNIQUE INDEX launch_codes_hash ON launch_codes (hash);

CREATE TABLE permits (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	project_id TEXT NOT NULL,
	task_id    TEXT NOT NULL,
	launch_id  TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX permits_hash ON permits (hash);

-- Writers that must not race a task's completion (runs, artifacts, launch
-- codes) lock its row FOR SHARE; completing it updates the row.
CREATE TABLE tasks (
	org_id       TEXT NOT NULL,
	project_id   TEXT NOT NULL,
	task_id      TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	completed_at BIGINT,
	PRIMARY KEY (org_id, project_id, task_id)
);

-- PutArtifact locks the run's row FOR UPDATE, so the run's byte limit and
-- the replacement of a name hold under concurrent puts.
CREATE TABLE runs (
	id           TEXT PRIMARY KEY,
	org_id       TEXT NOT NULL,
	project_id   TEXT NOT NULL,
	task_id      TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	completed_at BIGINT,
	FOREIGN KEY (org_id, project_id, task_id) REFERENCES tasks (org_id, project_id, task_id)
);
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
	size        BIGINT NOT NULL,
	sha256      TEXT NOT NULL,
	blob_key    TEXT NOT NULL,
	wrapped_dek BYTEA NOT NULL,
	keeper_id   TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	expires_at  BIGINT,
	replaced_at BIGINT
);
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
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (org_id, project_id, index_id, path)
);
