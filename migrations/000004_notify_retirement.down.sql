DROP TRIGGER IF EXISTS agents_retirement_notify ON agents;
