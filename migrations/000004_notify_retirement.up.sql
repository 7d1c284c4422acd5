-- A retirement sends no job to Pending, so the jobs trigger stays silent and
-- a `certctl-claim --follow --agent` of the retired agent would wait on until
-- some other job came. Notify the claimers' channel (with 000001's
-- certctl_jobs_notify) when an agent is retired: each wakes, claims again,
-- and the retired agent's follower exits 4.
DROP TRIGGER IF EXISTS agents_retirement_notify ON agents;
CREATE TRIGGER agents_retirement_notify AFTER UPDATE OF retired_at ON agents
    FOR EACH ROW WHEN (OLD.retired_at IS NULL AND NEW.retired_at IS NOT NULL)
    EXECUTE FUNCTION certctl_jobs_notify();
