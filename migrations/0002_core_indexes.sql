-- 0002_core_indexes.sql: indexes for the upstream tables (the guide's database/indexes.sql).
-- The unique keys that make ingestion idempotent (notice_id, uei, the match pair) come with their tables.

-- matches(opportunity_id, contractor_id) is covered by its unique key; this one serves "matches of a contractor".
CREATE INDEX matches_contractor_id_idx ON public.matches (contractor_id);
CREATE INDEX opportunities_deadline_idx ON public.opportunities (deadline);
CREATE INDEX opportunities_naics_code_idx ON public.opportunities (naics_code);
CREATE INDEX workflow_logs_created_at_idx ON public.workflow_logs (created_at DESC);
CREATE INDEX workflow_errors_unresolved_idx ON public.workflow_errors (created_at DESC) WHERE resolved_at IS NULL;
CREATE INDEX failed_opportunities_unresolved_idx ON public.failed_opportunities (created_at DESC)
  WHERE resolved_at IS NULL;
