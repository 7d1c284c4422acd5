-- Back to deployments of imported certificates only.
DROP FUNCTION IF EXISTS certctl_submit_csr(text, text, text);
DROP TABLE IF EXISTS job_csrs;
DROP INDEX IF EXISTS notification_events_once_per_version_idx;
ALTER TABLE notification_events DROP COLUMN IF EXISTS version_id;
DROP INDEX IF EXISTS jobs_one_unfinished_issuance_idx;
DROP TRIGGER IF EXISTS jobs_notify ON jobs;
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF status, scheduled_at ON jobs
    FOR EACH ROW WHEN (NEW.status = 'Pending') EXECUTE FUNCTION certctl_jobs_notify();
DROP TRIGGER IF EXISTS managed_certificates_renewal_due ON managed_certificates;
DROP TRIGGER IF EXISTS certificate_versions_renewal_due ON certificate_versions;
DROP FUNCTION IF EXISTS certctl_certificate_renewal_due();
DROP FUNCTION IF EXISTS certctl_version_renewal_due();
DROP FUNCTION IF EXISTS certctl_refresh_current_version(text);
DROP FUNCTION IF EXISTS certctl_certificate_renewal_due_at(text, interval);
DROP FUNCTION IF EXISTS certctl_renewal_due_at(text, timestamptz, timestamptz, interval);
DROP FUNCTION IF EXISTS certctl_renewal_jitter(text);
DROP INDEX IF EXISTS managed_certificates_renewal_due_idx;
DROP INDEX IF EXISTS managed_certificates_expiry_warning_idx;
ALTER TABLE managed_certificates DROP COLUMN IF EXISTS expiry_warning_at;
ALTER TABLE managed_certificates DROP COLUMN IF EXISTS current_version_id;
ALTER TABLE managed_certificates DROP CONSTRAINT IF EXISTS managed_certificates_issuer_id_fkey;
ALTER TABLE managed_certificates DROP COLUMN IF EXISTS renewal_due_at;
ALTER TABLE managed_certificates DROP COLUMN IF EXISTS auto_renew;
ALTER TABLE managed_certificates DROP COLUMN IF EXISTS renew_before;
ALTER TABLE managed_certificates DROP COLUMN IF EXISTS issuer_id;
ALTER TABLE managed_certificates DROP COLUMN IF EXISTS key_mode;
ALTER TABLE managed_certificates DROP COLUMN IF EXISTS key_type;
ALTER TABLE managed_certificates DROP COLUMN IF EXISTS sans;
DROP TABLE IF EXISTS issuers;

-- 000005's guard, without the SECURITY DEFINER pass.
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
