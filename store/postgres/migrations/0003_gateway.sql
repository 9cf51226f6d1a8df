-- 0003: the model gateway, the same as SQLite's: the org's model providers
-- with their sealed keys, privacy rules, token budgets with their
-- per-window counters, and usage records (metadata of each request, never
-- content).

CREATE TABLE model_providers (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL,
	name        TEXT NOT NULL,
	kind        TEXT NOT NULL,
	base_url    TEXT NOT NULL DEFAULT '',
	models      JSONB NOT NULL DEFAULT 'null',
	priority    INTEGER NOT NULL DEFAULT 0,
	ciphertext  BYTEA, -- NULL: a provider without a key
	wrapped_dek BYTEA,
	keeper_id   TEXT NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL,
	created_by  TEXT NOT NULL,
	ord         BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE UNIQUE INDEX model_providers_name ON model_providers (org_id, name);

CREATE TABLE privacy_rules (
	org_id     TEXT NOT NULL,
	scope      TEXT NOT NULL,
	target     TEXT NOT NULL,
	mode       TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	updated_by TEXT NOT NULL,
	PRIMARY KEY (org_id, scope, target)
);

-- key_id '' is the whole org's budget.
CREATE TABLE budgets (
	org_id      TEXT NOT NULL,
	key_id      TEXT NOT NULL,
	period      TEXT NOT NULL,
	token_limit BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL,
	updated_by  TEXT NOT NULL,
	PRIMARY KEY (org_id, key_id, period)
);

-- One row per budget window (window_start: the window's first microsecond).
-- Reservations lock and update these on every gateway request, in place
-- (HOT): no cache epoch trigger.
CREATE TABLE budget_counters (
	org_id       TEXT NOT NULL,
	key_id       TEXT NOT NULL,
	period       TEXT NOT NULL,
	window_start BIGINT NOT NULL,
	spent        BIGINT NOT NULL DEFAULT 0,
	reserved     BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (org_id, key_id, period, window_start)
) WITH (fillfactor = 50);

-- day is the UTC date of time ('2006-01-02'), written at insert so both
-- backends group usage by day the same way.
CREATE TABLE usage_records (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL,
	key_id      TEXT NOT NULL,
	provider    TEXT NOT NULL,
	model       TEXT NOT NULL,
	route       TEXT NOT NULL,
	tokens_in   BIGINT NOT NULL,
	tokens_out  BIGINT NOT NULL,
	latency_ms  DOUBLE PRECISION NOT NULL,
	overhead_ms DOUBLE PRECISION NOT NULL,
	status      INTEGER NOT NULL,
	redactions  INTEGER NOT NULL,
	known_hits  INTEGER NOT NULL,
	stream      BOOLEAN NOT NULL,
	mode        TEXT NOT NULL,
	time        BIGINT NOT NULL,
	day         TEXT NOT NULL
);
CREATE INDEX usage_records_org_time ON usage_records (org_id, time);
CREATE INDEX usage_records_time ON usage_records (time);

-- The gateway caches providers, privacy rules and budgets like the tables
-- of 0002, through the same function.
CREATE TRIGGER model_providers_cache_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON model_providers
	FOR EACH STATEMENT EXECUTE FUNCTION custos_advance_cache_epoch();
CREATE TRIGGER privacy_rules_cache_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON privacy_rules
	FOR EACH STATEMENT EXECUTE FUNCTION custos_advance_cache_epoch();
CREATE TRIGGER budgets_cache_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON budgets
	FOR EACH STATEMENT EXECUTE FUNCTION custos_advance_cache_epoch();
