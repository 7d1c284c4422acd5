-- certctl-notify delivers the notification_events outbox.
--
-- Wake a waiting `certctl-notify --follow` whenever an event becomes
-- pending: inserted by any command (so none of them needs to know about the
-- notifier) or requeued by an operator. pg_notify folds identical
-- notifications of one transaction into one, as certctl_jobs_notify does.
CREATE OR REPLACE FUNCTION certctl_notifications_notify() RETURNS trigger
LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_notify('certctl_notifications', ''); RETURN NULL; END $$;
REVOKE ALL ON FUNCTION certctl_notifications_notify() FROM PUBLIC;
DROP TRIGGER IF EXISTS notification_events_notify ON notification_events;
CREATE TRIGGER notification_events_notify AFTER INSERT OR UPDATE OF status ON notification_events
    FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION certctl_notifications_notify();

-- The claimable set, in the order certctl-notify takes it: pending events
-- by creation, failed ones by their retry time. The expression is the one
-- the claim orders by (libcommon/notify.c, NOTIFICATION_DUE_AT).
CREATE INDEX IF NOT EXISTS notification_events_due_idx ON notification_events
    ((CASE WHEN status = 'failed' THEN next_retry_at ELSE created_at END))
    WHERE status IN ('pending', 'failed');

-- Delivery is an operator's job (certctl_operator already has SELECT,
-- INSERT, UPDATE on notification_events since 000005). Agents keep INSERT
-- alone: they can neither read, claim nor mark an event.
