DROP INDEX IF EXISTS jobs_unfinished_target_idx;
DROP INDEX IF EXISTS jobs_unfinished_agent_idx;
