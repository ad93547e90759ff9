-- 0004_outbound_sync.sql: what the outbound sync (sync_queue → HubSpot) keeps beside the guide's tables.
-- All operational, so all in schema crmsync.

-- One row per drain run (schedule, SQS retry batch, CLI): counts and timings for `crmsync status`.
CREATE TABLE crmsync.sync_runs (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  trigger      text NOT NULL,
  status       text NOT NULL DEFAULT 'running',
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  counts       jsonb NOT NULL DEFAULT '{}'::jsonb,
  error        text,
  CONSTRAINT sync_runs_trigger_check CHECK (trigger IN ('schedule', 'retry_queue', 'cli', 'serve')),
  CONSTRAINT sync_runs_status_check CHECK (status IN ('running', 'succeeded', 'partial', 'failed'))
);
CREATE INDEX sync_runs_started_at_idx ON crmsync.sync_runs (started_at DESC);

-- The hash of each property value last written successfully to HubSpot, per entity: the sync sends only what
-- changed since. Pseudo-properties such as `assoc:company` track associations the same way.
CREATE TABLE crmsync.property_hashes (
  entity_type  text NOT NULL,
  entity_id    uuid NOT NULL,
  property     text NOT NULL,
  value_hash   text NOT NULL,
  synced_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (entity_type, entity_id, property)
);

-- Every property value the sync wrote (append-only): the webhook handler recognises our own changes coming back
-- by (object, property, value hash). Rows older than the webhook retry window (3 days) may be pruned.
CREATE TABLE crmsync.echo_ledger (
  id           bigserial PRIMARY KEY,
  object_type  text NOT NULL,
  hubspot_id   text NOT NULL,
  entity_id    uuid NOT NULL,
  property     text NOT NULL,
  value_hash   text NOT NULL,
  written_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX echo_ledger_lookup_idx ON crmsync.echo_ledger (object_type, hubspot_id, property, written_at DESC);
CREATE INDEX echo_ledger_written_at_idx ON crmsync.echo_ledger (written_at);

-- Settings the sync reads: `hubspot_pipeline` holds hubspot-setup's pipeline id and stage ids.
CREATE TABLE crmsync.settings (
  key          text PRIMARY KEY,
  value        jsonb NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER settings_set_updated_at BEFORE UPDATE ON crmsync.settings
  FOR EACH ROW EXECUTE FUNCTION crmsync.set_updated_at();

-- Claim query, second branch: in-progress rows whose lease expired (a crashed run) are taken over.
CREATE INDEX sync_queue_expired_lease_idx ON public.sync_queue (locked_until) WHERE status = 'in_progress';
