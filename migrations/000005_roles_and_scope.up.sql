-- Who may do what (see docs/security.md). The schema owner is the login that
-- migrates; operators and agents log in as roles that own nothing, so they
-- can neither run DDL nor disable a trigger. The database, not the commands,
-- keeps one agent out of another agent's rows.

-- Group roles are cluster-wide: create them once, whichever database comes
-- first; a concurrent migration of another database may win the race.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'certctl_operator') THEN
        CREATE ROLE certctl_operator NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'certctl_agent') THEN
        CREATE ROLE certctl_agent NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

-- An agent's login role and its X25519 public key (base64), both set by operators.
ALTER TABLE agents ADD COLUMN IF NOT EXISTS db_role TEXT;
ALTER TABLE agents ADD COLUMN IF NOT EXISTS public_key TEXT;
ALTER TABLE agents DROP CONSTRAINT IF EXISTS agents_public_key_check;
ALTER TABLE agents ADD CONSTRAINT agents_public_key_check
    CHECK (public_key ~ '^[A-Za-z0-9+/]{43}=$');
CREATE UNIQUE INDEX IF NOT EXISTS agents_db_role_idx ON agents (db_role) WHERE db_role IS NOT NULL;

-- A version's private key sealed to one agent (libsodium crypto_box_seal).
-- The sealed plaintext binds version id, agent id and the leaf fingerprint.
CREATE TABLE IF NOT EXISTS version_keys (
    version_id TEXT NOT NULL REFERENCES certificate_versions(id) ON DELETE CASCADE,
    agent_id   TEXT NOT NULL REFERENCES agents(id),
    sealed_key BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (version_id, agent_id)
);
CREATE INDEX IF NOT EXISTS version_keys_agent_id_idx ON version_keys (agent_id);

-- The agent the calling login stands for, or NULL. SECURITY DEFINER so that a
-- policy can ask without the caller seeing the agents table; session_user,
-- not a parameter, says who is calling.
CREATE OR REPLACE FUNCTION certctl_session_agent() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ SELECT id FROM public.agents WHERE db_role = session_user $$;

-- Is the caller an agent's role (and no operator)? Superusers are members of
-- every role, so they count as operators.
CREATE OR REPLACE FUNCTION certctl_session_is_agent() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ SELECT pg_has_role(session_user, 'certctl_agent', 'MEMBER')
      AND NOT pg_has_role(session_user, 'certctl_operator', 'MEMBER') $$;

-- Raises insufficient_privilege (exit 77) when an agent's role asks to act for
-- another agent (agent_id NULL: for an operator). Commands call it once a row
-- they asked for turned out invisible, to tell "not yours" from "no such".
CREATE OR REPLACE FUNCTION certctl_check_acting_for(agent_id text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ DECLARE mine text := certctl_session_agent();
BEGIN
    IF certctl_session_is_agent() AND (agent_id IS NULL OR agent_id IS DISTINCT FROM mine) THEN
        RAISE EXCEPTION 'role % acts for agent %, not for %', session_user,
            COALESCE(mine, '(none)'), COALESCE(agent_id, 'an operator')
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN true;
END $$;

-- The same for a job: an agent's role asking for a job it cannot see that
-- exists is refused (77), not told "no such job" (66).
CREATE OR REPLACE FUNCTION certctl_check_job_scope(job_id text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ BEGIN
    IF certctl_session_is_agent() AND EXISTS (SELECT 1 FROM public.jobs j WHERE j.id = job_id) THEN
        RAISE EXCEPTION 'job % is not a job of agent %', job_id,
            COALESCE(certctl_session_agent(), '(none)')
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN true;
END $$;

-- An agent moves its own jobs forward only: a claim (Pending -> Running, one
-- more attempt) and a finish or progress of a running job. Nothing back to
-- Pending, no attempts wound back.
CREATE OR REPLACE FUNCTION certctl_guard_agent_job_update() RETURNS trigger
LANGUAGE plpgsql AS
$$ BEGIN
    IF NOT certctl_session_is_agent() THEN
        RETURN NEW;
    END IF;
    IF (OLD.status = 'Pending' AND NEW.status = 'Running' AND NEW.attempts = OLD.attempts + 1)
       OR (OLD.status = 'Running' AND NEW.status IN ('Running', 'Completed', 'Failed')
           AND NEW.attempts = OLD.attempts) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'an agent may not move job % from % (attempt %) to % (attempt %)',
        OLD.id, OLD.status, OLD.attempts, NEW.status, NEW.attempts
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS jobs_guard_agent_update ON jobs;
CREATE TRIGGER jobs_guard_agent_update BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION certctl_guard_agent_job_update();

-- Nothing for PUBLIC: every privilege below is granted by name.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO certctl_operator, certctl_agent;
GRANT EXECUTE ON FUNCTION certctl_rfc3339(timestamptz), certctl_is_sentinel_agent(text),
    certctl_session_agent(), certctl_session_is_agent(), certctl_check_acting_for(text),
    certctl_check_job_scope(text)
    TO certctl_operator, certctl_agent;

-- Operators: read everything; write inventory, versions, jobs, retirements,
-- sealed keys; append audit and notification events. No DELETE but of
-- mappings and of sealed keys being replaced, no TRUNCATE, no DDL.
GRANT SELECT ON schema_migrations TO certctl_operator;
GRANT SELECT, INSERT, UPDATE ON agents, deployment_targets, managed_certificates, jobs
    TO certctl_operator;
GRANT SELECT, INSERT ON certificate_versions TO certctl_operator;
GRANT SELECT, INSERT, DELETE ON certificate_targets TO certctl_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON version_keys TO certctl_operator;
GRANT SELECT, INSERT ON audit_events TO certctl_operator;
GRANT SELECT, INSERT, UPDATE ON notification_events TO certctl_operator;

-- Agents: read their own rows; update their heartbeat and their jobs'
-- progress; never a target config, a certificate or another agent's key.
GRANT SELECT ON agents, deployment_targets, managed_certificates, certificate_targets,
    jobs, version_keys TO certctl_agent;
GRANT SELECT (id, certificate_id, serial_number, subject, not_before, not_after,
              fingerprint_sha256, cert_pem, chain_pem, key_algorithm, created_at)
    ON certificate_versions TO certctl_agent;
GRANT UPDATE (last_heartbeat_at, hostname, version, updated_at) ON agents TO certctl_agent;
GRANT UPDATE (status, attempts, started_at, claimed_by, lease_expires_at, completed_at,
              last_error, result, verification_status, verified_at, verified_fingerprint,
              verification_error, updated_at)
    ON jobs TO certctl_agent;
GRANT INSERT ON audit_events, notification_events TO certctl_agent;

ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE deployment_targets ENABLE ROW LEVEL SECURITY;
ALTER TABLE managed_certificates ENABLE ROW LEVEL SECURITY;
ALTER TABLE certificate_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE certificate_targets ENABLE ROW LEVEL SECURITY;
ALTER TABLE version_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_events ENABLE ROW LEVEL SECURITY;

-- Operators see and write every row their grants allow.
DROP POLICY IF EXISTS agents_operator ON agents;
CREATE POLICY agents_operator ON agents TO certctl_operator USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS deployment_targets_operator ON deployment_targets;
CREATE POLICY deployment_targets_operator ON deployment_targets TO certctl_operator
    USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS managed_certificates_operator ON managed_certificates;
CREATE POLICY managed_certificates_operator ON managed_certificates TO certctl_operator
    USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS certificate_versions_operator ON certificate_versions;
CREATE POLICY certificate_versions_operator ON certificate_versions TO certctl_operator
    USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS certificate_targets_operator ON certificate_targets;
CREATE POLICY certificate_targets_operator ON certificate_targets TO certctl_operator
    USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS version_keys_operator ON version_keys;
CREATE POLICY version_keys_operator ON version_keys TO certctl_operator USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS jobs_operator ON jobs;
CREATE POLICY jobs_operator ON jobs TO certctl_operator USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS audit_events_operator ON audit_events;
CREATE POLICY audit_events_operator ON audit_events TO certctl_operator USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS notification_events_operator ON notification_events;
CREATE POLICY notification_events_operator ON notification_events TO certctl_operator
    USING (true) WITH CHECK (true);

-- An agent: its own agent row ((SELECT ...) makes the lookup one InitPlan per
-- statement, not one call per row).
DROP POLICY IF EXISTS agents_agent ON agents;
CREATE POLICY agents_agent ON agents TO certctl_agent
    USING (id = (SELECT certctl_session_agent()))
    WITH CHECK (id = (SELECT certctl_session_agent()));
DROP POLICY IF EXISTS deployment_targets_agent ON deployment_targets;
CREATE POLICY deployment_targets_agent ON deployment_targets FOR SELECT TO certctl_agent
    USING (agent_id = (SELECT certctl_session_agent()));
-- Mappings, certificates and versions reachable through its own targets; the
-- inner tables' own policies apply inside, so only its targets count.
DROP POLICY IF EXISTS certificate_targets_agent ON certificate_targets;
CREATE POLICY certificate_targets_agent ON certificate_targets FOR SELECT TO certctl_agent
    USING (EXISTS (SELECT 1 FROM deployment_targets t WHERE t.id = target_id));
DROP POLICY IF EXISTS managed_certificates_agent ON managed_certificates;
CREATE POLICY managed_certificates_agent ON managed_certificates FOR SELECT TO certctl_agent
    USING (EXISTS (SELECT 1 FROM certificate_targets ct WHERE ct.certificate_id = managed_certificates.id));
DROP POLICY IF EXISTS certificate_versions_agent ON certificate_versions;
CREATE POLICY certificate_versions_agent ON certificate_versions FOR SELECT TO certctl_agent
    USING (EXISTS (SELECT 1 FROM certificate_targets ct WHERE ct.certificate_id = certificate_versions.certificate_id));
DROP POLICY IF EXISTS version_keys_agent ON version_keys;
CREATE POLICY version_keys_agent ON version_keys FOR SELECT TO certctl_agent
    USING (agent_id = (SELECT certctl_session_agent()));
-- Its jobs: the three ways certctl-claim --agent reaches a job.
DROP POLICY IF EXISTS jobs_agent ON jobs;
CREATE POLICY jobs_agent ON jobs TO certctl_agent
    USING (agent_id = (SELECT certctl_session_agent())
           OR (agent_id IS NULL AND EXISTS (SELECT 1 FROM deployment_targets t WHERE t.id = target_id))
           OR (status = 'AwaitingCSR' AND agent_id IS NULL
               AND EXISTS (SELECT 1 FROM certificate_targets ct WHERE ct.certificate_id = jobs.certificate_id)))
    WITH CHECK (agent_id = (SELECT certctl_session_agent())
           OR (agent_id IS NULL AND EXISTS (SELECT 1 FROM deployment_targets t WHERE t.id = target_id))
           OR (status = 'AwaitingCSR' AND agent_id IS NULL
               AND EXISTS (SELECT 1 FROM certificate_targets ct WHERE ct.certificate_id = jobs.certificate_id)));
-- Audit rows in its own name only.
DROP POLICY IF EXISTS audit_events_agent ON audit_events;
CREATE POLICY audit_events_agent ON audit_events FOR INSERT TO certctl_agent
    WITH CHECK (actor = (SELECT certctl_session_agent()) AND actor_type = 'Agent');
-- Notifications about its own jobs only.
DROP POLICY IF EXISTS notification_events_agent ON notification_events;
CREATE POLICY notification_events_agent ON notification_events FOR INSERT TO certctl_agent
    WITH CHECK (job_id IS NOT NULL AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = job_id));
