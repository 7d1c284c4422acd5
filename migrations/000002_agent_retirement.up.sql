-- Agents and targets are retired, never deleted: a stray DELETE of an agent
-- that still has targets must fail instead of cascading to them.
ALTER TABLE agents ADD COLUMN IF NOT EXISTS retired_at TIMESTAMPTZ;
ALTER TABLE agents ADD COLUMN IF NOT EXISTS retired_reason TEXT;
ALTER TABLE deployment_targets ADD COLUMN IF NOT EXISTS retired_at TIMESTAMPTZ;
ALTER TABLE deployment_targets ADD COLUMN IF NOT EXISTS retired_reason TEXT;

CREATE INDEX IF NOT EXISTS agents_retired_at_idx ON agents (retired_at)
    WHERE retired_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS deployment_targets_retired_at_idx ON deployment_targets (retired_at)
    WHERE retired_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS deployment_targets_active_agent_idx ON deployment_targets (agent_id)
    WHERE retired_at IS NULL;
CREATE INDEX IF NOT EXISTS agents_active_heartbeat_idx ON agents (last_heartbeat_at)
    WHERE retired_at IS NULL;

ALTER TABLE deployment_targets DROP CONSTRAINT IF EXISTS deployment_targets_agent_id_fkey;
ALTER TABLE deployment_targets ADD CONSTRAINT deployment_targets_agent_id_fkey
    FOREIGN KEY (agent_id) REFERENCES agents(id) ON DELETE RESTRICT;

-- Sentinel agents stand for built-in integrations: no path may retire or
-- delete them, a hand-written UPDATE included.
CREATE OR REPLACE FUNCTION certctl_is_sentinel_agent(agent_id text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS
$$ SELECT agent_id IN ('server-scanner', 'cloud-aws-sm', 'cloud-azure-kv', 'cloud-gcp-sm') $$;
CREATE OR REPLACE FUNCTION certctl_guard_sentinel_agent() RETURNS trigger
LANGUAGE plpgsql AS
$$ BEGIN
    IF TG_OP = 'DELETE' THEN
        IF certctl_is_sentinel_agent(OLD.id) THEN
            RAISE EXCEPTION 'agent % is a sentinel agent and cannot be deleted', OLD.id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.retired_at IS NOT NULL AND certctl_is_sentinel_agent(NEW.id) THEN
        RAISE EXCEPTION 'agent % is a sentinel agent and cannot be retired', NEW.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS agents_guard_sentinel ON agents;
CREATE TRIGGER agents_guard_sentinel BEFORE INSERT OR UPDATE OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION certctl_guard_sentinel_agent();
