-- 0001: the initial schema. Times are INTEGER unix microseconds (UTC);
-- nullable times are NULL. Maps and lists are JSON text.

CREATE TABLE orgs (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL,
	name        TEXT NOT NULL,
	role        TEXT NOT NULL,
	hash        TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER,
	revoked_at  INTEGER,
	rotated_at  INTEGER,
	grace_until INTEGER,
	replaced_by TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash);
CREATE INDEX api_keys_org ON api_keys (org_id, created_at);

CREATE TABLE devices (
	id           TEXT PRIMARY KEY,
	org_id       TEXT NOT NULL,
	key_id       TEXT NOT NULL,
	fingerprint  TEXT NOT NULL,
	machine_user TEXT NOT NULL,
	hostname     TEXT NOT NULL,
	agent        TEXT NOT NULL,
	ip           TEXT NOT NULL,
	status       TEXT NOT NULL,
	level        TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	decided_at   INTEGER,
	decided_by   TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE UNIQUE INDEX devices_fingerprint ON devices (org_id, fingerprint);
CREATE INDEX devices_org ON devices (org_id, created_at);
CREATE INDEX devices_key ON devices (org_id, key_id);

CREATE TABLE secrets (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL,
	project     TEXT NOT NULL,
	name        TEXT NOT NULL,
	tags        TEXT NOT NULL DEFAULT '{}',
	description TEXT NOT NULL DEFAULT '',
	version     INTEGER NOT NULL,
	expires_at  INTEGER,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX secrets_name ON secrets (org_id, project, name);

CREATE TABLE secret_versions (
	secret_id   TEXT NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
	version     INTEGER NOT NULL,
	ciphertext  BLOB NOT NULL,
	wrapped_dek BLOB NOT NULL,
	keeper_id   TEXT NOT NULL,
	created_by  TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER,
	PRIMARY KEY (secret_id, version)
) STRICT;

CREATE TABLE policies (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	tag_key    TEXT NOT NULL,
	tag_value  TEXT NOT NULL,
	rule       TEXT NOT NULL,
	models     TEXT NOT NULL DEFAULT 'null',
	notify_url TEXT NOT NULL DEFAULT '',
	expires_at INTEGER,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL
) STRICT;
CREATE INDEX policies_org ON policies (org_id, created_at);

CREATE TABLE sessions (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	tags       TEXT NOT NULL DEFAULT 'null',
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_device ON sessions (org_id, device_id);

CREATE TABLE confirmations (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	project    TEXT NOT NULL,
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER
) STRICT;
CREATE INDEX confirmations_lookup ON confirmations (org_id, device_id, project, name);

CREATE TABLE audit_events (
	org_id       TEXT NOT NULL,
	seq          INTEGER NOT NULL,
	time         INTEGER NOT NULL,
	action       TEXT NOT NULL,
	outcome      TEXT NOT NULL,
	reason       TEXT NOT NULL,
	key_id       TEXT NOT NULL,
	user         TEXT NOT NULL,
	device_id    TEXT NOT NULL,
	agent        TEXT NOT NULL,
	hostname     TEXT NOT NULL,
	machine_user TEXT NOT NULL,
	ip           TEXT NOT NULL,
	source       TEXT NOT NULL,
	mode         TEXT NOT NULL,
	model        TEXT NOT NULL,
	project      TEXT NOT NULL,
	secret       TEXT NOT NULL,
	version      INTEGER NOT NULL,
	target       TEXT NOT NULL,
	prev_hash    TEXT NOT NULL,
	hash         TEXT NOT NULL,
	PRIMARY KEY (org_id, seq)
) STRICT, WITHOUT ROWID;
-- No index on time: listings walk the primary key in seq order and filter on
-- time, which keeps every append to one b-tree.

CREATE TABLE outbox (
	id              TEXT PRIMARY KEY,
	org_id          TEXT NOT NULL,
	url             TEXT NOT NULL,
	payload         BLOB NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	created_at      INTEGER NOT NULL,
	next_attempt_at INTEGER NOT NULL,
	delivered_at    INTEGER,
	failed_at       INTEGER,
	last_error      TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;
