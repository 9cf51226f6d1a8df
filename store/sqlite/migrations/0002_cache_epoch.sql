-- 0002: a counter that every change to the tables the services cache
-- (keys, devices, policies, secrets and their versions) advances, in the
-- same transaction, by trigger, so no code path and no other process can
-- change them without in-memory caches noticing. Audit events, sessions and
-- confirmations are not cached and do not advance it.

CREATE TABLE cache_epoch (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	epoch INTEGER NOT NULL
) STRICT;
INSERT INTO cache_epoch (id, epoch) VALUES (1, 1);

CREATE TRIGGER api_keys_epoch_i AFTER INSERT ON api_keys BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER api_keys_epoch_u AFTER UPDATE ON api_keys BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER api_keys_epoch_d AFTER DELETE ON api_keys BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER devices_epoch_i AFTER INSERT ON devices BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER devices_epoch_u AFTER UPDATE ON devices BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER devices_epoch_d AFTER DELETE ON devices BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER policies_epoch_i AFTER INSERT ON policies BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER policies_epoch_u AFTER UPDATE ON policies BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER policies_epoch_d AFTER DELETE ON policies BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER secrets_epoch_i AFTER INSERT ON secrets BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER secrets_epoch_u AFTER UPDATE ON secrets BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER secrets_epoch_d AFTER DELETE ON secrets BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER secret_versions_epoch_i AFTER INSERT ON secret_versions BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER secret_versions_epoch_u AFTER UPDATE ON secret_versions BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER secret_versions_epoch_d AFTER DELETE ON secret_versions BEGIN UPDATE cache_epoch SET epoch = epoch + 1; END;
