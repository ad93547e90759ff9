-- 0003_crm_schema.sql: the local CRM (the guide's database/crm-schema.sql): companies, contacts, deals,
-- activities and the sync_queue outbox, with their indexes and the two dashboard views.
-- Runnable with `psql -v ON_ERROR_STOP=1 -f`; `crmsync migrate` applies it once.

-- One company per contractor (Step A). Companies created in HubSpot or by hand have no contractor.
CREATE TABLE public.companies (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  contractor_id         uuid REFERENCES public.contractors (id) ON DELETE SET NULL,
  source                text NOT NULL DEFAULT 'sam_gov',
  name                  text NOT NULL,
  uei                   text,
  cage_code             text,
  website               text,
  phone                 text,
  address               text,
  city                  text,
  state                 text,
  zip                   text,
  primary_naics         text,
  sam_registered        boolean,
  readiness_score       numeric(5,2),
  qualification_status  text NOT NULL DEFAULT 'unqualified',
  lifecycle_stage       text NOT NULL DEFAULT 'lead',
  description           text,
  owner_id              text,
  hubspot_company_id    text,
  hubspot_sync_status   text NOT NULL DEFAULT 'pending',
  last_hubspot_sync     timestamptz,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT companies_contractor_id_key UNIQUE (contractor_id),
  CONSTRAINT companies_hubspot_company_id_key UNIQUE (hubspot_company_id),
  CONSTRAINT companies_name_check CHECK (btrim(name) <> ''),
  CONSTRAINT companies_readiness_score_check CHECK (readiness_score BETWEEN 0 AND 100),
  -- Derived from readiness_score by ingestion (the guide's rule): local-owned.
  CONSTRAINT companies_qualification_status_check CHECK (qualification_status IN ('qualified', 'unqualified')),
  -- HubSpot's lifecycle stages (internal values).
  CONSTRAINT companies_lifecycle_stage_check CHECK (lifecycle_stage IN (
    'subscriber', 'lead', 'marketingqualifiedlead', 'salesqualifiedlead', 'opportunity', 'customer',
    'evangelist', 'other')),
  CONSTRAINT companies_hubspot_sync_status_check
    CHECK (hubspot_sync_status IN ('pending', 'synced', 'failed', 'deleted'))
);

CREATE TABLE public.contacts (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id            uuid REFERENCES public.companies (id) ON DELETE SET NULL,
  full_name             text NOT NULL,
  first_name            text,
  last_name             text,
  email                 text,
  phone                 text,
  mobile_phone          text,
  job_title             text,
  linkedin_url          text,
  is_primary            boolean NOT NULL DEFAULT false,
  source                text NOT NULL DEFAULT 'manual',
  lifecycle_stage       text NOT NULL DEFAULT 'lead',
  owner_id              text,
  notes                 text,
  hubspot_contact_id    text,
  hubspot_sync_status   text NOT NULL DEFAULT 'pending',
  last_hubspot_sync     timestamptz,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT contacts_hubspot_contact_id_key UNIQUE (hubspot_contact_id),
  CONSTRAINT contacts_full_name_check CHECK (btrim(full_name) <> ''),
  CONSTRAINT contacts_email_check CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
  CONSTRAINT contacts_lifecycle_stage_check CHECK (lifecycle_stage IN (
    'subscriber', 'lead', 'marketingqualifiedlead', 'salesqualifiedlead', 'opportunity', 'customer',
    'evangelist', 'other')),
  CONSTRAINT contacts_hubspot_sync_status_check
    CHECK (hubspot_sync_status IN ('pending', 'synced', 'failed', 'deleted'))
);
-- One contact per email address, case-insensitively (HubSpot deduplicates contacts by email too).
CREATE UNIQUE INDEX contacts_email_key ON public.contacts (lower(email)) WHERE email IS NOT NULL;

-- One deal per match (Step B). Deals created in HubSpot have no match or opportunity.
CREATE TABLE public.deals (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  opportunity_id        uuid REFERENCES public.opportunities (id) ON DELETE SET NULL,
  company_id            uuid REFERENCES public.companies (id) ON DELETE SET NULL,
  match_id              uuid REFERENCES public.matches (id) ON DELETE SET NULL,
  deal_name             text NOT NULL,
  deal_value            numeric(15,2),
  expected_close_date   date,
  pipeline              text NOT NULL DEFAULT 'b2g_opportunities',
  stage                 text NOT NULL DEFAULT 'new_match',
  match_score           numeric(6,3),
  win_probability       integer,
  priority              text NOT NULL DEFAULT 'medium',
  description           text,
  owner_id              text,
  hubspot_deal_id       text,
  hubspot_sync_status   text NOT NULL DEFAULT 'pending',
  last_hubspot_sync     timestamptz,
  closed_at             timestamptz,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT deals_match_id_key UNIQUE (match_id),
  CONSTRAINT deals_hubspot_deal_id_key UNIQUE (hubspot_deal_id),
  CONSTRAINT deals_deal_name_check CHECK (btrim(deal_name) <> ''),
  CONSTRAINT deals_deal_value_check CHECK (deal_value >= 0),
  CONSTRAINT deals_stage_check CHECK (stage IN (
    'new_match', 'initial_outreach', 'contact_made', 'qualified', 'proposal_sent', 'negotiation',
    'closed_won', 'closed_lost')),
  -- A deal is closed exactly when it has a closing time: the win-rate query depends on it.
  CONSTRAINT deals_closed_at_check CHECK ((stage IN ('closed_won', 'closed_lost')) = (closed_at IS NOT NULL)),
  CONSTRAINT deals_match_score_check CHECK (match_score BETWEEN 0 AND 100),
  CONSTRAINT deals_win_probability_check CHECK (win_probability BETWEEN 0 AND 100),
  CONSTRAINT deals_priority_check CHECK (priority IN ('low', 'medium', 'high')),
  CONSTRAINT deals_hubspot_sync_status_check
    CHECK (hubspot_sync_status IN ('pending', 'synced', 'failed', 'deleted'))
);

CREATE TABLE public.activities (
  id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  activity_type            text NOT NULL,
  subject                  text NOT NULL,
  body                     text,
  company_id               uuid REFERENCES public.companies (id) ON DELETE CASCADE,
  contact_id               uuid REFERENCES public.contacts (id) ON DELETE CASCADE,
  deal_id                  uuid REFERENCES public.deals (id) ON DELETE CASCADE,
  occurred_at              timestamptz NOT NULL DEFAULT now(),
  direction                text,
  status                   text,
  due_at                   timestamptz,
  duration_seconds         integer,
  created_by               text,
  hubspot_engagement_id    text,
  hubspot_sync_status      text NOT NULL DEFAULT 'pending',
  last_hubspot_sync        timestamptz,
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT activities_hubspot_engagement_id_key UNIQUE (hubspot_engagement_id),
  -- note, call, email, meeting and task become HubSpot engagements; stage_change and system stay local.
  CONSTRAINT activities_activity_type_check CHECK (activity_type IN (
    'note', 'call', 'email', 'meeting', 'task', 'stage_change', 'system')),
  CONSTRAINT activities_subject_check CHECK (btrim(subject) <> ''),
  CONSTRAINT activities_target_check CHECK (num_nonnulls(company_id, contact_id, deal_id) >= 1),
  CONSTRAINT activities_direction_check CHECK (direction IN ('inbound', 'outbound')),
  CONSTRAINT activities_duration_seconds_check CHECK (duration_seconds >= 0),
  CONSTRAINT activities_hubspot_sync_status_check
    CHECK (hubspot_sync_status IN ('pending', 'synced', 'failed', 'deleted', 'local_only'))
);

-- The outbox: every local change HubSpot must hear about. The sync claims due rows with
-- FOR UPDATE SKIP LOCKED and a lease (locked_until); an expired lease is taken over.
CREATE TABLE public.sync_queue (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  entity_type      text NOT NULL,
  entity_id        uuid NOT NULL,
  operation        text NOT NULL,
  status           text NOT NULL DEFAULT 'pending',
  payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
  attempts         integer NOT NULL DEFAULT 0,
  last_error       text,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  locked_until     timestamptz,
  locked_by        text,
  completed_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sync_queue_entity_type_check CHECK (entity_type IN ('company', 'contact', 'deal', 'activity')),
  CONSTRAINT sync_queue_operation_check CHECK (operation IN ('create', 'update', 'delete')),
  CONSTRAINT sync_queue_status_check
    CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'dead')),
  CONSTRAINT sync_queue_attempts_check CHECK (attempts >= 0)
);

CREATE TRIGGER companies_set_updated_at BEFORE UPDATE ON public.companies
  FOR EACH ROW EXECUTE FUNCTION crmsync.set_updated_at();
CREATE TRIGGER contacts_set_updated_at BEFORE UPDATE ON public.contacts
  FOR EACH ROW EXECUTE FUNCTION crmsync.set_updated_at();
CREATE TRIGGER deals_set_updated_at BEFORE UPDATE ON public.deals
  FOR EACH ROW EXECUTE FUNCTION crmsync.set_updated_at();
CREATE TRIGGER activities_set_updated_at BEFORE UPDATE ON public.activities
  FOR EACH ROW EXECUTE FUNCTION crmsync.set_updated_at();
CREATE TRIGGER sync_queue_set_updated_at BEFORE UPDATE ON public.sync_queue
  FOR EACH ROW EXECUTE FUNCTION crmsync.set_updated_at();

-- Dashboard: pipeline overview (WHERE stage NOT IN closed, GROUP BY stage, SUM(deal_value)).
CREATE INDEX deals_stage_idx ON public.deals (stage) INCLUDE (deal_value);
-- Dashboard: top companies (deals per company), and the company detail page.
CREATE INDEX deals_company_id_idx ON public.deals (company_id) INCLUDE (stage, deal_value);
-- Dashboard: win rate by month over closed deals only.
CREATE INDEX deals_closed_at_idx ON public.deals (closed_at) INCLUDE (stage) WHERE closed_at IS NOT NULL;
CREATE INDEX deals_opportunity_id_idx ON public.deals (opportunity_id);
-- Dashboard: recent activities.
CREATE INDEX activities_created_at_idx ON public.activities (created_at DESC);
CREATE INDEX activities_deal_id_idx ON public.activities (deal_id, created_at DESC);
CREATE INDEX activities_company_id_idx ON public.activities (company_id, created_at DESC);
CREATE INDEX activities_contact_id_idx ON public.activities (contact_id, created_at DESC);
CREATE INDEX companies_qualification_status_idx ON public.companies (qualification_status);
CREATE INDEX contacts_company_id_idx ON public.contacts (company_id);
-- The sync's claim query: due rows (pending, or failed and due again) in next_attempt_at order.
CREATE INDEX sync_queue_due_idx ON public.sync_queue (next_attempt_at) WHERE status IN ('pending', 'failed');
-- Coalescing: all open rows of one entity.
CREATE INDEX sync_queue_entity_idx ON public.sync_queue (entity_type, entity_id)
  WHERE status IN ('pending', 'in_progress', 'failed');
-- Operations: dead and failed items with their errors.
CREATE INDEX sync_queue_status_idx ON public.sync_queue (status, entity_type);

-- Open deals with their company and opportunity facts: the dashboard's deal list.
CREATE VIEW public.v_active_deals AS
SELECT
  d.id,
  d.deal_name,
  d.stage,
  d.priority,
  d.deal_value,
  d.expected_close_date,
  d.match_score,
  d.win_probability,
  d.hubspot_deal_id,
  d.hubspot_sync_status,
  d.created_at,
  d.updated_at,
  c.id AS company_id,
  c.name AS company_name,
  c.readiness_score,
  c.qualification_status,
  o.id AS opportunity_id,
  o.notice_id,
  o.agency,
  o.set_aside,
  o.deadline,
  (o.deadline - current_date) AS days_to_deadline
FROM public.deals d
LEFT JOIN public.companies c ON c.id = d.company_id
LEFT JOIN public.opportunities o ON o.id = d.opportunity_id
WHERE d.stage NOT IN ('closed_won', 'closed_lost');

-- One row per company: deals, pipeline value, wins, contacts and the latest activity.
CREATE VIEW public.v_company_engagement AS
SELECT
  c.id AS company_id,
  c.name,
  c.qualification_status,
  c.readiness_score,
  c.lifecycle_stage,
  COALESCE(d.total_deals, 0) AS total_deals,
  COALESCE(d.active_deals, 0) AS active_deals,
  COALESCE(d.won_deals, 0) AS won_deals,
  COALESCE(d.pipeline_value, 0) AS pipeline_value,
  COALESCE(ct.contacts, 0) AS contacts,
  COALESCE(a.activities, 0) AS activities,
  a.last_activity_at
FROM public.companies c
LEFT JOIN LATERAL (
  SELECT
    count(*) AS total_deals,
    count(*) FILTER (WHERE stage NOT IN ('closed_won', 'closed_lost')) AS active_deals,
    count(*) FILTER (WHERE stage = 'closed_won') AS won_deals,
    sum(deal_value) FILTER (WHERE stage NOT IN ('closed_won', 'closed_lost')) AS pipeline_value
  FROM public.deals WHERE company_id = c.id
) d ON true
LEFT JOIN LATERAL (SELECT count(*) AS contacts FROM public.contacts WHERE company_id = c.id) ct ON true
LEFT JOIN LATERAL (
  SELECT count(*) AS activities, max(created_at) AS last_activity_at
  FROM public.activities WHERE company_id = c.id
) a ON true;
