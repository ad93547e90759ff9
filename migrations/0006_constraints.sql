-- 0006_constraints.sql: CHECK constraints the core tables lacked. Added, not edited into 0001/0003, because
-- applied migrations are checksum-guarded.

-- An activity's status, when it has one: a task's progress (HubSpot's hs_task_status values, lower case:
-- NOT_STARTED, IN_PROGRESS, WAITING, COMPLETED, DEFERRED), 'done' (which the outbound sync, like 'completed',
-- sends as a completed task), and a meeting's or call's outcome. Null stays allowed: notes, emails and stage
-- changes have no status.
ALTER TABLE public.activities
  ADD CONSTRAINT activities_status_check CHECK (status IN (
    'not_started', 'in_progress', 'waiting', 'deferred', 'completed', 'done', 'scheduled', 'cancelled', 'no_show'));

-- The pipeline step a notice failed in. The guide names no values here; these are the steps of its data flow
-- (SAM opportunity fetch, AI enrichment, SAM vendor search, match engine, CRM sync).
ALTER TABLE public.failed_opportunities
  ADD CONSTRAINT failed_opportunities_stage_check CHECK (stage IN (
    'sam_fetch', 'ai_enrich', 'vendor_search', 'match_engine', 'crm_sync'));
