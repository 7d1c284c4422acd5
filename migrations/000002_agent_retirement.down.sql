DROP TRIGGER IF EXISTS agents_guard_sentinel ON agents;
DROP FUNCTION IF EXISTS certctl_guard_sentinel_agent();
DROP FUNCTION IF EXISTS certctl_is_sentinel_agent(text);
ALTER TABLE deployment_targets DROP CONSTRAINT IF EXISTS deployment_targets_agent_id_fkey;
ALTER TABLE deployment_targets ADD CONSTRAINT deployment_targets_agent_id_fkey
    FOREIGN KEY (agent_id) REFERENCES agents(id);
DROP INDEX IF EXISTS agents_active_heartbeat_idx;
DROP INDEX IF EXISTS deployment_targets_active_agent_idx;
DROP INDEX IF EXISTS deployment_targets_retired_at_idx;
DROP INDEX IF EXISTS agents_retired_at_idx;
ALTER TABLE deployment_targets DROP COLUMN IF EXISTS retired_reason;
ALTER TABLE deployment_targets DROP COLUMN IF EXISTS retired_at;
ALTER TABLE agents DROP COLUMN IF EXISTS retired_reason;
ALTER TABLE agents DROP COLUMN IF EXISTS retired_at;
