-- What certctl-status reads: the fingerprint a finished deployment installed
-- and what each target's endpoint was last seen serving (certctl-verify
-- --all), so that status needs the database alone (see certctl-status(1)).

-- The leaf fingerprint of the version a Completed (or Skipped) deployment
-- installed, set in the job's fenced finish. Deployments finished before
-- this migration get it from their audit event, which names the version.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS deployed_fingerprint TEXT;
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_deployed_fingerprint_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_deployed_fingerprint_check
    CHECK (deployed_fingerprint ~ '^[0-9a-f]{64}$');
UPDATE jobs j SET deployed_fingerprint = v.fingerprint_sha256
  FROM audit_events a JOIN certificate_versions v ON v.id = a.details->>'version_id'
 WHERE a.action = 'deployment_job_completed' AND a.resource_type = 'job'
   AND a.resource_id = j.id AND j.deployed_fingerprint IS NULL
   AND v.fingerprint_sha256 ~ '^[0-9a-f]{64}$';

-- The last finished deployment of each certificate on each target, by index.
CREATE INDEX IF NOT EXISTS jobs_finished_deployment_idx
    ON jobs (target_id, certificate_id, completed_at DESC NULLS LAST)
    WHERE type = 'Deployment' AND status IN ('Completed', 'Failed');
-- An unfinished deployment of a certificate to a target ("pending").
CREATE INDEX IF NOT EXISTS jobs_unfinished_deployment_idx
    ON jobs (target_id, certificate_id)
    WHERE type = 'Deployment' AND status IN ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running');

-- One row per target: its endpoint's last probe. served_* keep the last
-- successful probe; probed_at and error are the last attempt's.
CREATE TABLE IF NOT EXISTS target_probes (
    target_id          TEXT PRIMARY KEY REFERENCES deployment_targets(id),
    endpoint           TEXT NOT NULL,
    served_fingerprint TEXT CHECK (served_fingerprint ~ '^[0-9a-f]{64}$'),
    served_not_after   TIMESTAMPTZ,
    served_at          TIMESTAMPTZ,
    probed_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    error              TEXT CHECK (length(error) <= 1024)
);

-- Is an Issuance or Renewal of the certificate unfinished? Those jobs have no
-- target, so an agent's role cannot see them; this answers for the
-- certificates on its own active targets only (false for any other).
CREATE OR REPLACE FUNCTION certctl_renewal_in_progress(certificate_id text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ SELECT EXISTS (SELECT 1 FROM public.jobs j
                   WHERE j.certificate_id = $1 AND j.type IN ('Issuance', 'Renewal')
                     AND j.status IN ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running'))
      AND (NOT public.certctl_session_is_agent()
           OR EXISTS (SELECT 1 FROM public.certificate_targets ct
                        JOIN public.deployment_targets t ON t.id = ct.target_id
                       WHERE ct.certificate_id = $1 AND t.retired_at IS NULL
                         AND t.agent_id = public.certctl_session_agent())) $$;

-- Operators record probes; an agent's role records probes of its own targets
-- (certctl-verify --all --agent on its host) and reads only those.
REVOKE ALL ON target_probes FROM PUBLIC;
REVOKE ALL ON FUNCTION certctl_renewal_in_progress(text) FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON target_probes TO certctl_operator, certctl_agent;
GRANT UPDATE (deployed_fingerprint) ON jobs TO certctl_agent;
GRANT EXECUTE ON FUNCTION certctl_renewal_in_progress(text) TO certctl_operator, certctl_agent;

ALTER TABLE target_probes ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS target_probes_operator ON target_probes;
CREATE POLICY target_probes_operator ON target_probes TO certctl_operator
    USING (true) WITH CHECK (true);
-- deployment_targets' own policy shows an agent its own targets only.
DROP POLICY IF EXISTS target_probes_agent ON target_probes;
CREATE POLICY target_probes_agent ON target_probes TO certctl_agent
    USING (EXISTS (SELECT 1 FROM deployment_targets t WHERE t.id = target_id))
    WITH CHECK (EXISTS (SELECT 1 FROM deployment_targets t WHERE t.id = target_id));
