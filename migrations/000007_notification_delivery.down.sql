DROP INDEX IF EXISTS notification_events_due_idx;
DROP TRIGGER IF EXISTS notification_events_notify ON notification_events;
DROP FUNCTION IF EXISTS certctl_notifications_notify();
