-- Back to a status nobody records.
DROP FUNCTION IF EXISTS certctl_renewal_in_progress(text);
DROP TABLE IF EXISTS target_probes;
DROP INDEX IF EXISTS jobs_unfinished_deployment_idx;
DROP INDEX IF EXISTS jobs_finished_deployment_idx;
ALTER TABLE jobs DROP COLUMN IF EXISTS deployed_fingerprint;
