-- 0002: a counter that every change to the tables the services cache
-- (keys, devices, policies, secrets and their versions) advances, in the
-- same transaction, by statement-level trigger, so no code path and no
-- other replica can change them without in-memory caches noticing. Audit
-- events, sessions and confirmations are not cached and do not advance it.
-- A statement that changes no row advances it too; that only costs a
-- cache reload.

CREATE TABLE cache_epoch (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	epoch BIGINT NOT NULL
) WITH (fillfactor = 50);
INSERT INTO cache_epoch (id, epoch) VALUES (1, 1);

-- SET search_path FROM CURRENT pins the function to the schema it was
-- created in, whatever the search_path of the session that fires it.
CREATE FUNCTION custos_advance_cache_epoch() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	UPDATE cache_epoch SET epoch = epoch + 1 WHERE id = 1;
	RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_cache_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
	FOR EACH STATEMENT EXECUTE FUNCTION custos_advance_cache_epoch();
CREATE TRIGGER devices_cache_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON devices
	FOR EACH STATEMENT EXECUTE FUNCTION custos_advance_cache_epoch();
CREATE TRIGGER policies_cache_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON policies
	FOR EACH STATEMENT EXECUTE FUNCTION custos_advance_cache_epoch();
CREATE TRIGGER secrets_cache_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON secrets
	FOR EACH STATEMENT EXECUTE FUNCTION custos_advance_cache_epoch();
CREATE TRIGGER secret_versions_cache_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON secret_versions
	FOR EACH STATEMENT EXECUTE FUNCTION custos_advance_cache_epoch();
