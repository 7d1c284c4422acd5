-- Back to one role doing everything. The group roles stay: they are
-- cluster-wide and other databases may use them (drop them by hand).
DROP POLICY IF EXISTS notification_events_agent ON notification_events;
DROP POLICY IF EXISTS audit_events_agent ON audit_events;
DROP POLICY IF EXISTS jobs_agent ON jobs;
DROP POLICY IF EXISTS version_keys_agent ON version_keys;
DROP POLICY IF EXISTS certificate_versions_agent ON certificate_versions;
DROP POLICY IF EXISTS managed_certificates_agent ON managed_certificates;
DROP POLICY IF EXISTS certificate_targets_agent ON certificate_targets;
DROP POLICY IF EXISTS deployment_targets_agent ON deployment_targets;
DROP POLICY IF EXISTS agents_agent ON agents;
DROP POLICY IF EXISTS notification_events_operator ON notification_events;
DROP POLICY IF EXISTS audit_events_operator ON audit_events;
DROP POLICY IF EXISTS jobs_operator ON jobs;
DROP POLICY IF EXISTS version_keys_operator ON version_keys;
DROP POLICY IF EXISTS certificate_targets_operator ON certificate_targets;
DROP POLICY IF EXISTS certificate_versions_operator ON certificate_versions;
DROP POLICY IF EXISTS managed_certificates_operator ON managed_certificates;
DROP POLICY IF EXISTS deployment_targets_operator ON deployment_targets;
DROP POLICY IF EXISTS agents_operator ON agents;
ALTER TABLE notification_events DISABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events DISABLE ROW LEVEL SECURITY;
ALTER TABLE jobs DISABLE ROW LEVEL SECURITY;
ALTER TABLE certificate_targets DISABLE ROW LEVEL SECURITY;
ALTER TABLE certificate_versions DISABLE ROW LEVEL SECURITY;
ALTER TABLE managed_certificates DISABLE ROW LEVEL SECURITY;
ALTER TABLE deployment_targets DISABLE ROW LEVEL SECURITY;
ALTER TABLE agents DISABLE ROW LEVEL SECURITY;

DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'certctl_operator') THEN
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM certctl_operator;
        REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM certctl_operator;
        REVOKE ALL ON SCHEMA public FROM certctl_operator;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'certctl_agent') THEN
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM certctl_agent;
        REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM certctl_agent;
        REVOKE ALL ON SCHEMA public FROM certctl_agent;
    END IF;
END $$;
-- Functions are executable by PUBLIC by default; give that back.
GRANT EXECUTE ON FUNCTION certctl_rfc3339(timestamptz), certctl_is_sentinel_agent(text),
    certctl_default_name(), certctl_jobs_notify(), certctl_audit_append_only(),
    certctl_guard_sentinel_agent() TO PUBLIC;

DROP TRIGGER IF EXISTS jobs_guard_agent_update ON jobs;
DROP FUNCTION IF EXISTS certctl_guard_agent_job_update();
DROP FUNCTION IF EXISTS certctl_check_job_scope(text);
DROP FUNCTION IF EXISTS certctl_check_acting_for(text);
DROP FUNCTION IF EXISTS certctl_session_is_agent();
DROP FUNCTION IF EXISTS certctl_session_agent();
DROP TABLE IF EXISTS version_keys;
DROP INDEX IF EXISTS agents_db_role_idx;
ALTER TABLE agents DROP CONSTRAINT IF EXISTS agents_public_key_check;
ALTER TABLE agents DROP COLUMN IF EXISTS public_key;
ALTER TABLE agents DROP COLUMN IF EXISTS db_role;
