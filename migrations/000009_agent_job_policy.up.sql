-- An agent's job policy without nested row-level security: the target and
-- certificate branches of jobs_agent were EXISTS sub-selects on
-- deployment_targets and certificate_targets, whose own policies the planner
-- expanded in turn, and every new backend planned all of it again (a
-- timer-driven agent's every claim: docs/benchmarks.md, Fleet). Two
-- SECURITY DEFINER tests say the same thing directly: the target, or a
-- target the certificate is mapped to, belongs to the caller's agent.
CREATE OR REPLACE FUNCTION certctl_session_target(target text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ SELECT EXISTS (SELECT 1 FROM public.deployment_targets t
                  WHERE t.id = target AND t.agent_id = public.certctl_session_agent()) $$;

CREATE OR REPLACE FUNCTION certctl_session_certificate(certificate text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ SELECT EXISTS (SELECT 1 FROM public.certificate_targets ct
                  JOIN public.deployment_targets t ON t.id = ct.target_id
                  WHERE ct.certificate_id = certificate AND t.agent_id = public.certctl_session_agent()) $$;

REVOKE ALL ON FUNCTION certctl_session_target(text), certctl_session_certificate(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION certctl_session_target(text), certctl_session_certificate(text)
    TO certctl_agent;

DROP POLICY IF EXISTS jobs_agent ON jobs;
CREATE POLICY jobs_agent ON jobs TO certctl_agent
    USING (agent_id = (SELECT certctl_session_agent())
           OR (agent_id IS NULL AND certctl_session_target(target_id))
           OR (status = 'AwaitingCSR' AND agent_id IS NULL AND certctl_session_certificate(certificate_id)))
    WITH CHECK (agent_id = (SELECT certctl_session_agent())
           OR (agent_id IS NULL AND certctl_session_target(target_id))
           OR (status = 'AwaitingCSR' AND agent_id IS NULL AND certctl_session_certificate(certificate_id)));
