-- 0003: the model gateway: the org's model providers with their sealed
-- keys, privacy rules, token budgets with their per-window counters, and
-- usage records (metadata of each request, never content).

CREATE TABLE model_providers (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL,
	name        TEXT NOT NULL,
	kind        TEXT NOT NULL,
	base_url    TEXT NOT NULL DEFAULT '',
	models      TEXT NOT NULL DEFAULT 'null',
	priority    INTEGER NOT NULL DEFAULT 0,
	ciphertext  BLOB, -- NULL: a provider without a key
	wrapped_dek BLOB,
	keeper_id   TEXT NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	created_by  TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX model_providers_name ON model_providers (org_id, name);

CREATE TABLE privacy_rules (
	org_id     TEXT NOT NULL,
	scope      TEXT NOT NULL,
	target     TEXT NOT NULL,
	mode       TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	updated_by TEXT NOT NULL,
	PRIMARY KEY (org_id, scope, target)
) STRICT, WITHOUT ROWID;

-- key_id '' is the whole org's budget.
CREATE TABLE budgets (
	org_id      TEXT NOT NULL,
	key_id      TEXT NOT NULL,
	period      TEXT NOT NULL,
	token_limit INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	updated_by  TEXT NOT NULL,
	PRIMARY KEY (org_id, key_id, period)
) STRICT, WITHOUT ROWID;

-- One row per budget window (window_start: the window's first microsecond).
-- Reservations change these on every gateway request: no cache epoch
-- trigger.
CREATE TABLE budget_counters (
	org_id       TEXT NOT NULL,
	key_id       TEXT NOT NULL,
	period       TEXT NOT NULL,
	window_start INTEGER NOT NULL,
	spent        INTEGER NOT NULL DEFAULT 0,
	reserved     INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (org_id, key_id, period, window_start)
) STRICT, WITHOUT ROWID;

-- day is the UTC date of time ('2006-01-02'), written at insert so both
-- backends group usage by day the same way.
CREATE TABLE usage_records (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL,
	key_id      TEXT NOT NULL,
	provider    TEXT NOT NULL,
	model       TEXT NOT NULL,
	route       TEXT NOT NULL,
	tokens_in   INTEGER NOT NULL,
	tokens_out  INTEGER NOT NULL,
	latency_ms  REAL NOT NULL,
	overhead_ms REAL NOT NULL,
	status      INTEGER NOT NULL,
	redactions  INTEGER NOT NULL,
	known_hits  INTEGER NOT NULL,
	stream      INTEGER NOT NULL,
	mode        TEXT NOT NULL,
	time        INTEGER NOT NULL,
	day         TEXT NOT NULL
) STRICT;
CREATE INDEX usage_records_org_time ON usage_records (org_id, time);
CREATE INDEX usage_records_time ON usage_records (time);

-- The gateway caches providers, privacy rules and budgets like the tables
-- of 0002.
CREATE TRIGGER model_providers_epoch_i AFTER INSERT ON model_providers BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER model_providers_epoch_u AFTER UPDATE ON model_providers BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER model_providers_epoch_d AFTER DELETE ON model_providers BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER privacy_rules_epoch_i AFTER INSERT ON privacy_rules BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER privacy_rules_epoch_u AFTER UPDATE ON privacy_rules BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER privacy_rules_epoch_d AFTER DELETE ON privacy_rules BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER budgets_epoch_i AFTER INSERT ON budgets BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER budgets_epoch_u AFTER UPDATE ON budgets BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER budgets_epoch_d AFTER DELETE ON budgets BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
