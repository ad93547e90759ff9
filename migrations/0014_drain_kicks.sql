-- 0014_drain_kicks.sql: the fast path (issue 14). After a write commits rows to sync_queue it kicks: it asks for a
-- drain through one SQS message on the retry queue, delayed by the debounce window, and the outbound-sync function
-- drains when the message arrives. Kicks come from many Lambda processes, so their coalescing lives here: one row
-- per drainer with the due time of the requested drain that has not started yet (NULL when none waits). A kick that
-- finds a request waiting (due_at plus the lost window not passed) is covered by it and sends nothing; else it sets
-- due_at and sends the message. The requested drain sets due_at to NULL before its first claim, so a row committed
-- after that asks for the next drain. The rule is crmsync_domain::kick's.
CREATE TABLE crmsync.drain_kicks (
  name          text PRIMARY KEY,
  due_at        timestamptz,
  requested_at  timestamptz,
  updated_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO crmsync.drain_kicks (name) VALUES ('outbound');

-- Drains a kick started are recorded in crmsync.sync_runs as trigger 'kick'. Applied migrations are
-- checksum-guarded, so 0010's check is replaced here.
ALTER TABLE crmsync.sync_runs DROP CONSTRAINT sync_runs_trigger_check;
ALTER TABLE crmsync.sync_runs ADD CONSTRAINT sync_runs_trigger_check
  CHECK (trigger IN ('schedule', 'retry_queue', 'cli', 'serve', 'reconcile', 'import', 'kick'));
