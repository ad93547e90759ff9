-- 0010_reconcile.sql: reconciliation (`crmsync reconcile`, hourly) and the first import (`crmsync import-hubspot`)
-- record their runs in crmsync.sync_runs beside the drains, with their counts; how a run was started (schedule,
-- serve, cli) is in its counts' `started_by`. 0004's check allowed only the drains' triggers, and applied
-- migrations are checksum-guarded, so the check is replaced here.
-- Their state lives in crmsync.settings: `reconcile_watermark` (per object type, the time up to which HubSpot's
-- changes are applied) and `import_hubspot_checkpoint` (the last deal id of the last committed page).
ALTER TABLE crmsync.sync_runs DROP CONSTRAINT sync_runs_trigger_check;
ALTER TABLE crmsync.sync_runs ADD CONSTRAINT sync_runs_trigger_check
  CHECK (trigger IN ('schedule', 'retry_queue', 'cli', 'serve', 'reconcile', 'import'));
