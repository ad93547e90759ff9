-- 0013_engagements_owners.sql: activities logged in HubSpot come home, and owners have names (issue 13).
--
-- The guide's activities table already has what an engagement needs for its place in the CRM (activity_type,
-- subject, body, occurred_at, status, the deal, company and contact it is about, and hubspot_engagement_id with its
-- unique constraint, which makes one row per engagement). Added here, beside the guide's columns, which stay as
-- they are (so the guide's queries and v_company_engagement, which counts every row of a company, run unchanged):

-- Where the activity was logged: 'local' (our API, crmsync's own stage changes; HubSpot gets it from the outbound
-- sync) or 'hubspot' (a salesperson logged it in HubSpot; it came home by webhook, reconciliation or the import).
ALTER TABLE public.activities ADD COLUMN IF NOT EXISTS logged_in text NOT NULL DEFAULT 'local';
-- The HubSpot owner (hubspot_owner_id) of an engagement, like deals.owner_id; names are in crmsync.hubspot_owners.
ALTER TABLE public.activities ADD COLUMN IF NOT EXISTS owner_id text;
-- HubSpot's modified date (hs_lastmodifieddate) of the engagement state a row holds: a read older than it (a pass in
-- another process that read the engagement before an edit) never overwrites it.
ALTER TABLE public.activities ADD COLUMN IF NOT EXISTS hubspot_modified_at timestamptz;

ALTER TABLE public.activities DROP CONSTRAINT IF EXISTS activities_logged_in_check;
ALTER TABLE public.activities ADD CONSTRAINT activities_logged_in_check CHECK (logged_in IN ('local', 'hubspot'));

-- A call's outcome as HubSpot records it (hs_call_status BUSY, NO_ANSWER, FAILED) joins the statuses 0006 allows.
ALTER TABLE public.activities DROP CONSTRAINT IF EXISTS activities_status_check;
ALTER TABLE public.activities ADD CONSTRAINT activities_status_check CHECK (status IN (
  'not_started', 'in_progress', 'waiting', 'deferred', 'completed', 'done', 'scheduled', 'cancelled', 'no_show',
  'busy', 'no_answer', 'failed'));

-- HubSpot's owners (GET /crm/v3/owners, archived ones too, so an old engagement's owner keeps a name), refreshed
-- by `crmsync owners refresh`, by every reconciliation and on serve's schedule. An owner HubSpot no longer lists is
-- kept with archived = true.
CREATE TABLE IF NOT EXISTS crmsync.hubspot_owners (
  id            text PRIMARY KEY,
  email         text,
  first_name    text,
  last_name     text,
  user_id       bigint,
  archived      boolean NOT NULL DEFAULT false,
  refreshed_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT hubspot_owners_id_check CHECK (btrim(id) <> '')
);
