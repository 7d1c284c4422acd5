-- certctl data model (CONTRACT §2). Every statement is idempotent so that a
-- partly applied run converges when applied again.

CREATE OR REPLACE FUNCTION certctl_rfc3339(ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;

-- name defaults to the id: a column default cannot name another column.
CREATE OR REPLACE FUNCTION certctl_default_name() RETURNS trigger
LANGUAGE plpgsql AS
$$ BEGIN NEW.name := COALESCE(NULLIF(NEW.name, ''), NEW.id); RETURN NEW; END $$;

CREATE TABLE IF NOT EXISTS agents (
    id                TEXT PRIMARY KEY CHECK (id <> ''),
    name              TEXT NOT NULL,
    hostname          TEXT,
    version           TEXT,
    last_heartbeat_at TIMESTAMPTZ,
    registered_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
DROP TRIGGER IF EXISTS agents_default_name ON agents;
CREATE TRIGGER agents_default_name BEFORE INSERT OR UPDATE ON agents
    FOR EACH ROW EXECUTE FUNCTION certctl_default_name();

CREATE TABLE IF NOT EXISTS deployment_targets (
    id         TEXT PRIMARY KEY CHECK (id <> ''),
    name       TEXT NOT NULL,
    -- The type is checked by certctl-deploy (exit 78), not here, so that an
    -- operator's typo is reported on the job instead of refused on insert.
    type       TEXT NOT NULL CHECK (type <> ''),
    agent_id   TEXT NOT NULL,
    config     JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(config) = 'object'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'deployment_targets_agent_id_fkey') THEN
        ALTER TABLE deployment_targets ADD CONSTRAINT deployment_targets_agent_id_fkey
            FOREIGN KEY (agent_id) REFERENCES agents(id);
    END IF;
END $$;
DROP TRIGGER IF EXISTS deployment_targets_default_name ON deployment_targets;
CREATE TRIGGER deployment_targets_default_name BEFORE INSERT OR UPDATE ON deployment_targets
    FOR EACH ROW EXECUTE FUNCTION certctl_default_name();
CREATE INDEX IF NOT EXISTS deployment_targets_agent_id_idx ON deployment_targets (agent_id);

CREATE TABLE IF NOT EXISTS managed_certificates (
    id          TEXT PRIMARY KEY CHECK (id <> ''),
    name        TEXT NOT NULL,
    common_name TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
DROP TRIGGER IF EXISTS managed_certificates_default_name ON managed_certificates;
CREATE TRIGGER managed_certificates_default_name BEFORE INSERT OR UPDATE ON managed_certificates
    FOR EACH ROW EXECUTE FUNCTION certctl_default_name();

-- A certificate's current version is its newest row here.
CREATE TABLE IF NOT EXISTS certificate_versions (
    id                 TEXT PRIMARY KEY CHECK (id <> ''),
    certificate_id     TEXT NOT NULL REFERENCES managed_certificates(id) ON DELETE CASCADE,
    serial_number      TEXT NOT NULL,
    subject            TEXT,
    not_before         TIMESTAMPTZ NOT NULL,
    not_after          TIMESTAMPTZ NOT NULL,
    fingerprint_sha256 TEXT NOT NULL,
    cert_pem           TEXT NOT NULL,
    chain_pem          TEXT NOT NULL DEFAULT '',
    -- AES-256-GCM sealed private key (see libcommon/sealed.h); never plaintext.
    key_sealed         BYTEA,
    key_algorithm      TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (certificate_id, fingerprint_sha256)
);
CREATE INDEX IF NOT EXISTS certificate_versions_current_idx
    ON certificate_versions (certificate_id, created_at DESC);

CREATE TABLE IF NOT EXISTS certificate_targets (
    certificate_id TEXT NOT NULL REFERENCES managed_certificates(id) ON DELETE CASCADE,
    target_id      TEXT NOT NULL REFERENCES deployment_targets(id),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (certificate_id, target_id)
);
CREATE INDEX IF NOT EXISTS certificate_targets_target_id_idx ON certificate_targets (target_id);

CREATE TABLE IF NOT EXISTS jobs (
    id                   TEXT PRIMARY KEY CHECK (id <> ''),
    type                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    certificate_id       TEXT REFERENCES managed_certificates(id),
    target_id            TEXT REFERENCES deployment_targets(id),
    agent_id             TEXT REFERENCES agents(id),
    attempts             INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts         INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    scheduled_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at           TIMESTAMPTZ,
    completed_at         TIMESTAMPTZ,
    last_error           TEXT,
    claimed_by           TEXT,
    lease_expires_at     TIMESTAMPTZ,
    result               JSONB,
    verification_status  TEXT,
    verified_at          TIMESTAMPTZ,
    verified_fingerprint TEXT,
    verification_error   TEXT,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_type_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_type_check
    CHECK (type IN ('Issuance', 'Renewal', 'Deployment', 'Validation'));
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running',
                      'Completed', 'Failed', 'Cancelled'));
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_verification_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_verification_status_check
    CHECK (verification_status IN ('success', 'mismatch', 'failed', 'skipped'));
-- The claimable set is small next to the whole table: index only it.
CREATE INDEX IF NOT EXISTS jobs_pending_idx ON jobs (scheduled_at) WHERE status = 'Pending';
CREATE INDEX IF NOT EXISTS jobs_pending_agent_idx ON jobs (agent_id, scheduled_at) WHERE status = 'Pending';
CREATE INDEX IF NOT EXISTS jobs_pending_target_idx ON jobs (target_id, scheduled_at) WHERE status = 'Pending';
CREATE INDEX IF NOT EXISTS jobs_running_lease_idx ON jobs (lease_expires_at) WHERE status = 'Running';
CREATE INDEX IF NOT EXISTS jobs_awaiting_csr_idx ON jobs (certificate_id) WHERE status = 'AwaitingCSR';
CREATE INDEX IF NOT EXISTS jobs_agent_id_idx ON jobs (agent_id);
CREATE INDEX IF NOT EXISTS jobs_target_id_idx ON jobs (target_id);
CREATE INDEX IF NOT EXISTS jobs_certificate_id_idx ON jobs (certificate_id);

-- Wakes `certctl-claim --wait`. One payload per channel and transaction, so a
-- bulk enqueue sends one notification, not one per row.
CREATE OR REPLACE FUNCTION certctl_jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_notify('certctl_jobs', ''); RETURN NULL; END $$;
DROP TRIGGER IF EXISTS jobs_notify ON jobs;
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF status, scheduled_at ON jobs
    FOR EACH ROW WHEN (NEW.status = 'Pending') EXECUTE FUNCTION certctl_jobs_notify();

CREATE TABLE IF NOT EXISTS audit_events (
    id            TEXT PRIMARY KEY DEFAULT 'audit-' || gen_random_uuid()::text,
    actor         TEXT NOT NULL,
    actor_type    TEXT NOT NULL CHECK (actor_type IN ('User', 'System', 'Agent')),
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    details       JSONB,
    occurred_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS audit_events_resource_idx ON audit_events (resource_type, resource_id);
CREATE INDEX IF NOT EXISTS audit_events_occurred_at_idx ON audit_events (occurred_at);
CREATE OR REPLACE FUNCTION certctl_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS
$$ BEGIN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'check_violation';
END $$;
DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION certctl_audit_append_only();
DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events;
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION certctl_audit_append_only();

CREATE TABLE IF NOT EXISTS notification_events (
    id             TEXT PRIMARY KEY DEFAULT 'notif-' || gen_random_uuid()::text,
    type           TEXT NOT NULL,
    certificate_id TEXT REFERENCES managed_certificates(id) ON DELETE CASCADE,
    job_id         TEXT REFERENCES jobs(id) ON DELETE SET NULL,
    channel        TEXT NOT NULL DEFAULT 'log',
    recipient      TEXT NOT NULL DEFAULT '',
    message        TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'sent', 'failed', 'dead', 'read')),
    retry_count    INTEGER NOT NULL DEFAULT 0,
    next_retry_at  TIMESTAMPTZ,
    last_error     TEXT,
    sent_at        TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS notification_events_pending_idx ON notification_events (created_at) WHERE status = 'pending';

INSERT INTO agents (id, name) VALUES
    ('server-scanner', 'server-scanner'),
    ('cloud-aws-sm', 'cloud-aws-sm'),
    ('cloud-azure-kv', 'cloud-azure-kv'),
    ('cloud-gcp-sm', 'cloud-gcp-sm')
ON CONFLICT (id) DO NOTHING;
