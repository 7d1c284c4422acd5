-- A retirement sends no job to Pending, so the jobs trigger stays silent and
-- a `certctl-claim --follow --agent` of the retired agent would wait on until
-- some other job came. Notify the claimers' channel when an agent is retired:
-- each wakes, claims again, and the retired agent's follower exits 4.
CREATE OR REPLACE FUNCTION certctl_retirement_notify() RETURNS trigger
LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_notify('certctl_jobs', ''); RETURN NULL; END $$;
DROP TRIGGER IF EXISTS agents_retirement_notify ON agents;
CREATE TRIGGER agents_retirement_notify AFTER UPDATE OF retired_at ON agents
    FOR EACH ROW WHEN (OLD.retired_at IS NULL AND NEW.retired_at IS NOT NULL)
    EXECUTE FUNCTION certctl_retirement_notify();
