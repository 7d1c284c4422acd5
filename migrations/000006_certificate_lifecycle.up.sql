-- The certificate lifecycle: issuers, what a certificate asks of its next
-- version, when it is due, and the CSR an agent submits for a key it made
-- itself (see certctl(7) and docs/security.md).

CREATE TABLE IF NOT EXISTS issuers (
    id         TEXT PRIMARY KEY CHECK (id <> ''),
    name       TEXT NOT NULL,
    type       TEXT NOT NULL,
    config     JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE issuers DROP CONSTRAINT IF EXISTS issuers_type_check;
ALTER TABLE issuers ADD CONSTRAINT issuers_type_check CHECK (type IN ('command'));
-- certctl-import checks a config first and says what is wrong; this is the
-- backstop for rows written by hand.
ALTER TABLE issuers DROP CONSTRAINT IF EXISTS issuers_config_check;
ALTER TABLE issuers ADD CONSTRAINT issuers_config_check CHECK (
    jsonb_typeof(config) = 'object'
    AND jsonb_typeof(config->'command') = 'array'
    AND jsonb_array_length(config->'command') > 0
    AND (NOT config ? 'timeout'
         OR (jsonb_typeof(config->'timeout') = 'number' AND (config->>'timeout')::numeric > 0)));
DROP TRIGGER IF EXISTS issuers_default_name ON issuers;
CREATE TRIGGER issuers_default_name BEFORE INSERT OR UPDATE ON issuers
    FOR EACH ROW EXECUTE FUNCTION certctl_default_name();

ALTER TABLE managed_certificates ADD COLUMN IF NOT EXISTS sans TEXT[] NOT NULL DEFAULT '{}';
ALTER TABLE managed_certificates ADD COLUMN IF NOT EXISTS key_type TEXT NOT NULL DEFAULT 'ecdsa-p256';
ALTER TABLE managed_certificates ADD COLUMN IF NOT EXISTS key_mode TEXT NOT NULL DEFAULT 'central';
ALTER TABLE managed_certificates ADD COLUMN IF NOT EXISTS issuer_id TEXT;
ALTER TABLE managed_certificates ADD COLUMN IF NOT EXISTS renew_before INTERVAL;
ALTER TABLE managed_certificates ADD COLUMN IF NOT EXISTS auto_renew BOOLEAN NOT NULL DEFAULT true;
-- When the current version is due for renewal ('-infinity': no version yet,
-- so an Issuance is due). Kept by the triggers below, so that certctl-renew
-- finds the few due certificates by index instead of reading every version.
ALTER TABLE managed_certificates ADD COLUMN IF NOT EXISTS renewal_due_at TIMESTAMPTZ NOT NULL
    DEFAULT '-infinity';
-- The current (newest) version and when it has one sixth of its lifetime
-- left (the expiry warning), kept by the same triggers, for the same reason.
ALTER TABLE managed_certificates ADD COLUMN IF NOT EXISTS current_version_id TEXT;
ALTER TABLE managed_certificates ADD COLUMN IF NOT EXISTS expiry_warning_at TIMESTAMPTZ;
ALTER TABLE managed_certificates DROP CONSTRAINT IF EXISTS managed_certificates_key_type_check;
ALTER TABLE managed_certificates ADD CONSTRAINT managed_certificates_key_type_check
    CHECK (key_type IN ('ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072'));
ALTER TABLE managed_certificates DROP CONSTRAINT IF EXISTS managed_certificates_key_mode_check;
ALTER TABLE managed_certificates ADD CONSTRAINT managed_certificates_key_mode_check
    CHECK (key_mode IN ('central', 'agent'));
ALTER TABLE managed_certificates DROP CONSTRAINT IF EXISTS managed_certificates_renew_before_check;
ALTER TABLE managed_certificates ADD CONSTRAINT managed_certificates_renew_before_check
    CHECK (renew_before > interval '0');
ALTER TABLE managed_certificates DROP CONSTRAINT IF EXISTS managed_certificates_issuer_id_fkey;
ALTER TABLE managed_certificates ADD CONSTRAINT managed_certificates_issuer_id_fkey
    FOREIGN KEY (issuer_id) REFERENCES issuers(id) ON DELETE RESTRICT;
CREATE INDEX IF NOT EXISTS managed_certificates_renewal_due_idx ON managed_certificates (renewal_due_at)
    WHERE auto_renew AND issuer_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS managed_certificates_expiry_warning_idx
    ON managed_certificates (expiry_warning_at);

-- A stable per-certificate fraction in [0, 0.02): md5, unlike hashtext, is
-- the same on every PostgreSQL version and machine.
CREATE OR REPLACE FUNCTION certctl_renewal_jitter(certificate_id text) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT ('x' || substr(md5(certificate_id), 1, 8))::bit(32)::bigint / 4294967296.0 * 0.02 $$;

-- The renewal point of a version: renew_before ahead of not_after when set,
-- else where one third of the lifetime remains (one half under 10 days);
-- then earlier by the jitter share of the lifetime. In seconds, so that a
-- "day" never depends on the session's time zone.
CREATE OR REPLACE FUNCTION certctl_renewal_due_at(certificate_id text, not_before timestamptz,
                                                  not_after timestamptz, renew_before interval)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT to_timestamp(extract(epoch FROM not_after)
        - CASE WHEN renew_before IS NOT NULL THEN extract(epoch FROM renew_before)
               WHEN not_after - not_before < interval '10 days'
                    THEN extract(epoch FROM not_after - not_before) / 2
               ELSE extract(epoch FROM not_after - not_before) / 3 END
        - extract(epoch FROM not_after - not_before) * certctl_renewal_jitter(certificate_id)) $$;

-- The due point of a certificate from its current (newest) version.
CREATE OR REPLACE FUNCTION certctl_certificate_renewal_due_at(certificate_id text, renew_before interval)
RETURNS timestamptz LANGUAGE sql STABLE AS
$$ SELECT COALESCE((SELECT certctl_renewal_due_at(v.certificate_id, v.not_before, v.not_after, renew_before)
                      FROM certificate_versions v WHERE v.certificate_id = $1
                     ORDER BY v.created_at DESC, v.id DESC LIMIT 1),
                   '-infinity') $$;

-- Brings a certificate's current version, due point and warning point up
-- to date with its newest version.
CREATE OR REPLACE FUNCTION certctl_refresh_current_version(certificate_id text) RETURNS void
LANGUAGE sql AS
$$ UPDATE managed_certificates m
      SET renewal_due_at = certctl_certificate_renewal_due_at(m.id, m.renew_before),
          (current_version_id, expiry_warning_at) =
          (SELECT v.id, to_timestamp(extract(epoch FROM v.not_after)
                                     - extract(epoch FROM v.not_after - v.not_before) / 6)
             FROM certificate_versions v WHERE v.certificate_id = m.id
            ORDER BY v.created_at DESC, v.id DESC LIMIT 1)
    WHERE m.id = $1 $$;

CREATE OR REPLACE FUNCTION certctl_version_renewal_due() RETURNS trigger
LANGUAGE plpgsql AS
$$ BEGIN
    PERFORM certctl_refresh_current_version(NEW.certificate_id);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS certificate_versions_renewal_due ON certificate_versions;
CREATE TRIGGER certificate_versions_renewal_due AFTER INSERT ON certificate_versions
    FOR EACH ROW EXECUTE FUNCTION certctl_version_renewal_due();

CREATE OR REPLACE FUNCTION certctl_certificate_renewal_due() RETURNS trigger
LANGUAGE plpgsql AS
$$ BEGIN
    NEW.renewal_due_at := certctl_certificate_renewal_due_at(NEW.id, NEW.renew_before);
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS managed_certificates_renewal_due ON managed_certificates;
CREATE TRIGGER managed_certificates_renewal_due BEFORE UPDATE OF renew_before ON managed_certificates
    FOR EACH ROW EXECUTE FUNCTION certctl_certificate_renewal_due();

SELECT certctl_refresh_current_version(id) FROM managed_certificates;

-- At most one unfinished Issuance or Renewal per certificate.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_unfinished_issuance_idx ON jobs (certificate_id)
    WHERE type IN ('Issuance', 'Renewal')
      AND status IN ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running');

-- An agent's follower (certctl-claim --agent --follow) is woken for a job
-- awaiting its CSR as for a Pending one.
DROP TRIGGER IF EXISTS jobs_notify ON jobs;
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF status, scheduled_at ON jobs
    FOR EACH ROW WHEN (NEW.status IN ('Pending', 'AwaitingCSR')) EXECUTE FUNCTION certctl_jobs_notify();

-- Expiry warnings once per version and kind.
ALTER TABLE notification_events ADD COLUMN IF NOT EXISTS version_id TEXT
    REFERENCES certificate_versions(id) ON DELETE CASCADE;
CREATE UNIQUE INDEX IF NOT EXISTS notification_events_once_per_version_idx
    ON notification_events (version_id, type)
    WHERE version_id IS NOT NULL AND type IN ('expiry_warning', 'expired');

-- The CSR an agent submitted for a job of a key_mode 'agent' certificate;
-- the key stays on the agent. One per job: a retried job reuses it.
CREATE TABLE IF NOT EXISTS job_csrs (
    job_id            TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    certificate_id    TEXT NOT NULL REFERENCES managed_certificates(id) ON DELETE CASCADE,
    agent_id          TEXT NOT NULL REFERENCES agents(id),
    csr_pem           TEXT NOT NULL
                      CHECK (csr_pem LIKE '-----BEGIN CERTIFICATE REQUEST-----%'
                             AND length(csr_pem) <= 65536),
    public_key_sha256 TEXT NOT NULL CHECK (public_key_sha256 ~ '^[0-9a-f]{64}$'),
    submitted_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS job_csrs_agent_id_idx ON job_csrs (agent_id);

-- The one way an agent's role moves a job out of AwaitingCSR: its own job
-- (routed to it, or unrouted for a certificate on one of its active targets),
-- of an agent-mode certificate, still awaiting a CSR. The job becomes Pending
-- with no agent, for certctl-issue, and leaves the agent's queue.
CREATE OR REPLACE FUNCTION certctl_submit_csr(job_id text, csr_pem text, public_key_sha256 text)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ DECLARE
    mine text := certctl_session_agent();
    job public.jobs%ROWTYPE;
    submitted timestamptz;
BEGIN
    IF mine IS NULL OR NOT certctl_session_is_agent() THEN
        RAISE EXCEPTION 'only an agent''s role submits a CSR' USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT * INTO job FROM public.jobs j WHERE j.id = $1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no job %', $1 USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT (job.agent_id = mine
            OR (job.agent_id IS NULL AND EXISTS (
                    SELECT 1 FROM public.certificate_targets ct
                      JOIN public.deployment_targets t ON t.id = ct.target_id
                     WHERE ct.certificate_id = job.certificate_id
                       AND t.agent_id = mine AND t.retired_at IS NULL))) THEN
        RAISE EXCEPTION 'job % is not a job of agent %', $1, mine USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM public.agents a WHERE a.id = mine AND a.retired_at IS NOT NULL) THEN
        RAISE EXCEPTION 'agent % is retired', mine USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF job.status <> 'AwaitingCSR' OR job.type NOT IN ('Issuance', 'Renewal') THEN
        RAISE EXCEPTION 'job % is % %, not awaiting a CSR', $1, job.type, job.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.managed_certificates m
                    WHERE m.id = job.certificate_id AND m.key_mode = 'agent') THEN
        RAISE EXCEPTION 'certificate % does not take keys made on agents', job.certificate_id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    INSERT INTO public.job_csrs (job_id, certificate_id, agent_id, csr_pem, public_key_sha256)
    VALUES (job.id, job.certificate_id, mine, $2, $3)
    ON CONFLICT ON CONSTRAINT job_csrs_pkey DO UPDATE
       SET agent_id = EXCLUDED.agent_id, csr_pem = EXCLUDED.csr_pem,
           public_key_sha256 = EXCLUDED.public_key_sha256, submitted_at = now()
    RETURNING submitted_at INTO submitted;
    UPDATE public.jobs j SET status = 'Pending', agent_id = NULL, scheduled_at = now(),
                             updated_at = now()
     WHERE j.id = job.id;
    RETURN submitted;
END $$;

-- The guard of 000005, now also letting through what a SECURITY DEFINER
-- function of the schema owner does for an agent (certctl_submit_csr): there
-- current_user is a role the agent's login cannot take on itself.
CREATE OR REPLACE FUNCTION certctl_guard_agent_job_update() RETURNS trigger
LANGUAGE plpgsql AS
$$ BEGIN
    IF NOT certctl_session_is_agent()
       OR (current_user <> session_user AND NOT pg_has_role(session_user, current_user, 'MEMBER')) THEN
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

-- Grants and row-level security (docs/security.md): operators manage issuers
-- and read CSRs; an agent sees its own CSRs, never an issuer, and writes a
-- CSR only through certctl_submit_csr.
REVOKE ALL ON issuers, job_csrs FROM PUBLIC;
REVOKE ALL ON FUNCTION certctl_renewal_jitter(text),
    certctl_renewal_due_at(text, timestamptz, timestamptz, interval),
    certctl_certificate_renewal_due_at(text, interval), certctl_refresh_current_version(text),
    certctl_version_renewal_due(), certctl_certificate_renewal_due(),
    certctl_submit_csr(text, text, text) FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON issuers TO certctl_operator;
GRANT SELECT ON job_csrs TO certctl_operator, certctl_agent;
GRANT EXECUTE ON FUNCTION certctl_renewal_jitter(text),
    certctl_renewal_due_at(text, timestamptz, timestamptz, interval),
    certctl_certificate_renewal_due_at(text, interval), certctl_refresh_current_version(text),
    certctl_version_renewal_due(), certctl_certificate_renewal_due() TO certctl_operator;
GRANT EXECUTE ON FUNCTION certctl_submit_csr(text, text, text) TO certctl_agent;

ALTER TABLE issuers ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_csrs ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS issuers_operator ON issuers;
CREATE POLICY issuers_operator ON issuers TO certctl_operator USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS job_csrs_operator ON job_csrs;
CREATE POLICY job_csrs_operator ON job_csrs FOR SELECT TO certctl_operator USING (true);
DROP POLICY IF EXISTS job_csrs_agent ON job_csrs;
CREATE POLICY job_csrs_agent ON job_csrs FOR SELECT TO certctl_agent
    USING (agent_id = (SELECT certctl_session_agent()));
