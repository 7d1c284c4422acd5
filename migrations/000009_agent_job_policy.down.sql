-- Back to the job policy of 000005.
DROP POLICY IF EXISTS jobs_agent ON jobs;
CREATE POLICY jobs_agent ON jobs TO certctl_agent
    USING (agent_id = (SELECT certctl_session_agent())
           OR (agent_id IS NULL AND EXISTS (SELECT 1 FROM deployment_targets t WHERE t.id = target_id))
           OR (status = 'AwaitingCSR' AND agent_id IS NULL
               AND EXISTS (SELECT 1 FROM certificate_targets ct WHERE ct.certificate_id = jobs.certificate_id)))
    WITH CHECK (agent_id = (SELECT certctl_session_agent())
           OR (agent_id IS NULL AND EXISTS (SELECT 1 FROM deployment_targets t WHERE t.id = target_id))
           OR (status = 'AwaitingCSR' AND agent_id IS NULL
               AND EXISTS (SELECT 1 FROM certificate_targets ct WHERE ct.certificate_id = jobs.certificate_id)));
DROP FUNCTION IF EXISTS certctl_session_target(text);
DROP FUNCTION IF EXISTS certctl_session_certificate(text);
