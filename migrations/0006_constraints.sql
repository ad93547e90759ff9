-- 0006_constraints.sql: CHECK constraints the core tables lacked. Added, not edited into 0001/0003, because
-- applied migrations are checksum-guarded.

-- An activity's status, when it has one: a task's progress (HubSpot's hs_task_status values, lower case:
-- NOT_STARTED, IN_PROGRESS, WAITING, COMPLETED, DEFERRED), 'done' (which the outbound sync, like 'completed',
-- sends as a completed task), and a meeting's or call's outcome. Null stays allowed: notes, emails and stage
-- changes have no status.
ALTER TABLE public.activities
  ADD CONSTRAINT activities_status_check CHECK (status IN (
    'not_started', 'in_progress', 'waiting', 'deferred', 'completed', 'done', 'scheduled', 'cancelled', 'no_show'));

-- failed_opportunities.stage gets no CHECK: the guide names no values for it and the upstream workflow writes it,
-- so a list guessed here could refuse (and lose) its failure records.
