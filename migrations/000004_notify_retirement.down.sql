DROP TRIGGER IF EXISTS agents_retirement_notify ON agents;
DROP FUNCTION IF EXISTS certctl_retirement_notify();
