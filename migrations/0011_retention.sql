-- 0011_retention.sql: retention (`crmsync prune`, issue 12). The indexes its bounded deletes walk, so that each
-- batch finds its oldest rows without scanning a table, and deleting inbox rows does not scan sync_conflicts for
-- each one.
--
-- A new file rather than an edit of 0003/0004/0005: those are applied everywhere, and an applied migration is
-- never edited.

-- Completed outbox rows by completion time (the open rows have their own partial indexes).
CREATE INDEX IF NOT EXISTS sync_queue_completed_at_idx ON public.sync_queue (completed_at)
  WHERE status = 'completed';

-- Settled inbox rows by the time they were received: applied and skipped rows, and dead ones (kept longer).
CREATE INDEX IF NOT EXISTS webhook_inbox_settled_received_at_idx ON crmsync.webhook_inbox (received_at)
  WHERE status IN ('applied', 'skipped', 'dead');

-- sync_conflicts.inbox_id references webhook_inbox ON DELETE SET NULL: without this index, each deleted inbox row
-- would scan sync_conflicts to find the conflicts it recorded.
CREATE INDEX IF NOT EXISTS sync_conflicts_inbox_id_idx ON crmsync.sync_conflicts (inbox_id)
  WHERE inbox_id IS NOT NULL;
