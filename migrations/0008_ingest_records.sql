-- 0008_ingest_records.sql: ingestion's own run records, in crmsync's schema.
--
-- Ingestion used to write one workflow_logs row per delivery and one workflow_errors row per rejected match. Those
-- two tables are the upstream workflow's: the guide's database/schema.sql created them, crmsync adopts them as they
-- are (see README, "Migrations"), and their columns are not ours to assume (our 0001 is a reconstruction). So
-- crmsync keeps its records here, and leaves workflow_logs and workflow_errors to the workflow that owns them.
-- Rows it wrote there before stay where they are.

-- One row per delivery (Lambda event, `crmsync ingest`, POST /ingest/matches), with the report's counts.
CREATE TABLE crmsync.ingest_deliveries (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  source       text NOT NULL,
  rejected     integer NOT NULL,
  summary      jsonb NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_deliveries_received_at_idx ON crmsync.ingest_deliveries (received_at DESC);

-- One row per rejected match, carrying the match as delivered, so a rejected match is never lost.
CREATE TABLE crmsync.ingest_rejections (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  delivery_id  uuid NOT NULL REFERENCES crmsync.ingest_deliveries (id) ON DELETE CASCADE,
  item_index   integer NOT NULL,
  field        text,
  error        text NOT NULL,
  item         jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_rejections_delivery_id_idx ON crmsync.ingest_rejections (delivery_id);
