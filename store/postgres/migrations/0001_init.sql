-- 0001: the initial schema, the same as SQLite's. Times are BIGINT unix
-- microseconds (UTC); nullable times are NULL. Maps and lists are JSONB;
-- ciphertext is BYTEA. Tables listed oldest first carry ord, their
-- insertion order, to break ties in created_at as SQLite's rowid does.

CREATE TABLE orgs (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL,
	name        TEXT NOT NULL,
	role        TEXT NOT NULL,
	hash        TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	expires_at  BIGINT,
	revoked_at  BIGINT,
	rotated_at  BIGINT,
	grace_until BIGINT,
	replaced_by TEXT NOT NULL DEFAULT '',
	ord         BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash);
CREATE INDEX api_keys_org ON api_keys (org_id, created_at, ord);

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
	created_at   BIGINT NOT NULL,
	decided_at   BIGINT,
	decided_by   TEXT NOT NULL DEFAULT '',
	ord          BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE UNIQUE INDEX devices_fingerprint ON devices (org_id, fingerprint);
CREATE INDEX devices_org ON devices (org_id, created_at, ord);
CREATE INDEX devices_key ON devices (org_id, key_id);

CREATE TABLE secrets (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL,
	project     TEXT NOT NULL,
	name        TEXT NOT NULL,
	tags        JSONB NOT NULL DEFAULT '{}',
	description TEXT NOT NULL DEFAULT '',
	version     INTEGER NOT NULL,
	expires_at  BIGINT,
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX secrets_name ON secrets (org_id, project, name);

CREATE TABLE secret_versions (
	secret_id   TEXT NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
	version     INTEGER NOT NULL,
	ciphertext  BYTEA NOT NULL,
	wrapped_dek BYTEA NOT NULL,
	keeper_id   TEXT NOT NULL,
	created_by  TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	expires_at  BIGINT,
	PRIMARY KEY (secret_id, version)
);

CREATE TABLE policies (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	tag_key    TEXT NOT NULL,
	tag_value  TEXT NOT NULL,
	rule       TEXT NOT NULL,
	models     JSONB NOT NULL DEFAULT 'null',
	notify_url TEXT NOT NULL DEFAULT '',
	expires_at BIGINT,
	created_at BIGINT NOT NULL,
	created_by TEXT NOT NULL,
	ord        BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX policies_org ON policies (org_id, created_at, ord);

CREATE TABLE sessions (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	tags       JSONB NOT NULL DEFAULT 'null',
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	ord        BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX sessions_device ON sessions (org_id, device_id);

CREATE TABLE confirmations (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	project    TEXT NOT NULL,
	name       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at    BIGINT,
	ord        BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX confirmations_lookup ON confirmations (org_id, device_id, project, name);

CREATE TABLE audit_events (
	org_id       TEXT NOT NULL,
	seq          BIGINT NOT NULL,
	time         BIGINT NOT NULL,
	action       TEXT NOT NULL,
	outcome      TEXT NOT NULL,
	reason       TEXT NOT NULL,
	key_id       TEXT NOT NULL,
	"user"       TEXT NOT NULL,
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
);
-- No index on time: listings walk the primary key in seq order and filter on
-- time.

-- The last event of each org's chain. Appenders lock an org's row (SELECT …
-- FOR UPDATE) from reading the head to commit, which serializes the appends
-- of one org across every replica. Updated in place (HOT) on every append.
CREATE TABLE audit_heads (
	org_id TEXT PRIMARY KEY,
	seq    BIGINT NOT NULL,
	hash   TEXT NOT NULL
) WITH (fillfactor = 50);

CREATE TABLE outbox (
	id              TEXT PRIMARY KEY,
	org_id          TEXT NOT NULL,
	url             TEXT NOT NULL,
	payload         BYTEA NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	created_at      BIGINT NOT NULL,
	next_attempt_at BIGINT NOT NULL,
	delivered_at    BIGINT,
	failed_at       BIGINT,
	last_error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value BYTEA NOT NULL
);
