-- certctl-retire counts an agent's unfinished jobs, by agent and through its
-- targets, inside the transaction that holds the agent row: index just those.
CREATE INDEX IF NOT EXISTS jobs_unfinished_agent_idx ON jobs (agent_id, id)
    WHERE status IN ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running');
CREATE INDEX IF NOT EXISTS jobs_unfinished_target_idx ON jobs (target_id, id)
    WHERE status IN ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running');
