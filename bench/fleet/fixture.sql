-- The fleet of bench/fleet.sh and tests/fleet.bats, made by SQL (certctl-enroll
-- one agent at a time would take minutes for 10 000): :agents agents, each
-- with its own login role (:prefix_00001 ...) in certctl_agent, the password
-- :password, a public key, one file target, one certificate with a version
-- mapped to it and already sealed to the agent, so that certctl-enqueue's
-- code creates a job without sealing. Run as a superuser (CREATE ROLE), in the
-- database, after certctl-migrate.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT :'prefix' || '_00001' AS first_role \gset
CREATE ROLE :"first_role" LOGIN PASSWORD :'password' IN ROLE certctl_agent;
SELECT set_config('fleet.prefix', :'prefix', false), set_config('fleet.agents', :'agents', false) \gset
-- One SCRAM verifier for all: the server computes it once, not 10 000 times.
DO $$
DECLARE
	prefix text := current_setting('fleet.prefix');
	verifier text;
BEGIN
	SELECT rolpassword INTO verifier FROM pg_authid WHERE rolname = prefix || '_00001';
	FOR g IN 2..current_setting('fleet.agents')::int LOOP
		EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE certctl_agent',
			       prefix || '_' || lpad(g::text, 5, '0'), verifier);
	END LOOP;
END $$;
BEGIN;
INSERT INTO agents (id, hostname, last_heartbeat_at, db_role, public_key)
	SELECT 'fleet-' || lpad(g::text, 5, '0'), 'fleet-host-' || g, now(),
	       :'prefix' || '_' || lpad(g::text, 5, '0'), rpad('', 43, 'A') || '='
	FROM generate_series(1, :agents) g;
INSERT INTO deployment_targets (id, type, agent_id)
	SELECT 'fleet-target-' || lpad(g::text, 5, '0'), 'file', 'fleet-' || lpad(g::text, 5, '0')
	FROM generate_series(1, :agents) g;
INSERT INTO managed_certificates (id, common_name)
	SELECT 'fleet-cert-' || lpad(g::text, 5, '0'), 'host' || g || '.fleet.test'
	FROM generate_series(1, :agents) g;
INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after,
				  fingerprint_sha256, cert_pem)
	SELECT 'fleet-version-' || lpad(g::text, 5, '0'), 'fleet-cert-' || lpad(g::text, 5, '0'),
	       to_hex(g), now() - interval '1 day', now() + interval '90 days',
	       encode(sha256(g::text::bytea), 'hex'), 'not a certificate: fleet fixture'
	FROM generate_series(1, :agents) g;
INSERT INTO certificate_targets (certificate_id, target_id)
	SELECT 'fleet-cert-' || lpad(g::text, 5, '0'), 'fleet-target-' || lpad(g::text, 5, '0')
	FROM generate_series(1, :agents) g;
INSERT INTO version_keys (version_id, agent_id, sealed_key)
	SELECT 'fleet-version-' || lpad(g::text, 5, '0'), 'fleet-' || lpad(g::text, 5, '0'), '\x00'
	FROM generate_series(1, :agents) g;
COMMIT;
ANALYZE;
