-- 0001_core_schema.sql: the upstream pipeline's tables (the guide's database/schema.sql).
-- opportunities (SAM.gov notices), contractors (vendors), matches, and the workflow's logs and errors.
-- Runnable with `psql -v ON_ERROR_STOP=1 -f migrations/0001_core_schema.sql`; `crmsync migrate` applies it once
-- and records it in crmsync.schema_migrations.
--
-- The guide's Step 1 is "already done": on its Supabase database these six tables exist, with the upstream
-- workflow's rows. So each table below is created, with its checks, updated_at trigger and indexes (the indexes
-- were 0002_core_indexes.sql's), only where it does not exist yet. An existing one is adopted as it is: before this file
-- runs, `crmsync migrate` adds only what crmsync needs to it (missing columns, empty; the unique keys it upserts
-- on), or stops with a report when its data or types stand in the way (shared/db/src/adopt.rs). Its checks and
-- triggers stay the upstream workflow's business: crmsync adds none.
--
-- On a database without the tables this file creates exactly what its first version (with 0002) created, so a
-- database migrated with that version is the same as a new one; crmsync migrate accepts either checksum.

-- Operational objects (migration history, trigger functions, later the webhook inbox, sync runs, echo ledger and
-- settings) live in their own schema, out of the tables Supabase exposes to the browser.
CREATE SCHEMA IF NOT EXISTS crmsync;

-- Keeps updated_at current on every table crmsync creates with one.
CREATE OR REPLACE FUNCTION crmsync.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$;

DO $$
BEGIN
  IF to_regclass('public.opportunities') IS NULL THEN
    CREATE TABLE public.opportunities (
      id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      notice_id                   text NOT NULL,
      solicitation_number         text,
      title                       text NOT NULL,
      description                 text,
      agency                      text,
      sub_agency                  text,
      office                      text,
      naics_code                  text,
      psc_code                    text,
      set_aside                   text,
      notice_type                 text,
      estimated_value             numeric(15,2),
      posted_date                 date,
      deadline                    date,
      priority_flag               text,
      place_of_performance_state  text,
      url                         text,
      created_at                  timestamptz NOT NULL DEFAULT now(),
      updated_at                  timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT opportunities_notice_id_key UNIQUE (notice_id),
      CONSTRAINT opportunities_notice_id_check CHECK (btrim(notice_id) <> '' AND length(notice_id) <= 100),
      CONSTRAINT opportunities_title_check CHECK (btrim(title) <> ''),
      CONSTRAINT opportunities_naics_code_check CHECK (naics_code ~ '^[0-9]{2,6}$'),
      CONSTRAINT opportunities_estimated_value_check CHECK (estimated_value >= 0)
    );
    CREATE TRIGGER opportunities_set_updated_at BEFORE UPDATE ON public.opportunities
      FOR EACH ROW EXECUTE FUNCTION crmsync.set_updated_at();
    CREATE INDEX opportunities_deadline_idx ON public.opportunities (deadline);
    CREATE INDEX opportunities_naics_code_idx ON public.opportunities (naics_code);
  END IF;
END
$$;

DO $$
BEGIN
  IF to_regclass('public.contractors') IS NULL THEN
    CREATE TABLE public.contractors (
      id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      uei              text NOT NULL,
      source           text NOT NULL DEFAULT 'sam_gov',
      name             text NOT NULL,
      cage_code        text,
      website          text,
      phone            text,
      email            text,
      address          text,
      city             text,
      state            text,
      zip              text,
      primary_naics    text,
      sam_registered   boolean,
      readiness_score  numeric(5,2),
      created_at       timestamptz NOT NULL DEFAULT now(),
      updated_at       timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT contractors_uei_key UNIQUE (uei),
      -- SAM.gov's Unique Entity ID: 12 upper-case letters and digits.
      CONSTRAINT contractors_uei_check CHECK (uei ~ '^[A-Z0-9]{12}$'),
      CONSTRAINT contractors_name_check CHECK (btrim(name) <> ''),
      CONSTRAINT contractors_cage_code_check CHECK (cage_code ~ '^[A-Z0-9]{5}$'),
      CONSTRAINT contractors_primary_naics_check CHECK (primary_naics ~ '^[0-9]{2,6}$'),
      CONSTRAINT contractors_readiness_score_check CHECK (readiness_score BETWEEN 0 AND 100)
    );
    CREATE TRIGGER contractors_set_updated_at BEFORE UPDATE ON public.contractors
      FOR EACH ROW EXECUTE FUNCTION crmsync.set_updated_at();
  END IF;
END
$$;

DO $$
BEGIN
  IF to_regclass('public.matches') IS NULL THEN
    CREATE TABLE public.matches (
      id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      opportunity_id   uuid NOT NULL REFERENCES public.opportunities (id) ON DELETE CASCADE,
      contractor_id    uuid NOT NULL REFERENCES public.contractors (id) ON DELETE CASCADE,
      match_score      numeric(6,3) NOT NULL,
      match_reasons    jsonb,
      created_at       timestamptz NOT NULL DEFAULT now(),
      updated_at       timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT matches_opportunity_id_contractor_id_key UNIQUE (opportunity_id, contractor_id),
      CONSTRAINT matches_match_score_check CHECK (match_score BETWEEN 0 AND 100)
    );
    CREATE TRIGGER matches_set_updated_at BEFORE UPDATE ON public.matches
      FOR EACH ROW EXECUTE FUNCTION crmsync.set_updated_at();
    -- matches(opportunity_id, contractor_id) is covered by its unique key; this one serves "matches of a
    -- contractor".
    CREATE INDEX matches_contractor_id_idx ON public.matches (contractor_id);
  END IF;
END
$$;

-- Notices the enrichment step could not process, kept for a retry or a human look.
DO $$
BEGIN
  IF to_regclass('public.failed_opportunities') IS NULL THEN
    CREATE TABLE public.failed_opportunities (
      id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      notice_id        text,
      stage            text NOT NULL,
      error_message    text NOT NULL,
      payload          jsonb,
      attempts         integer NOT NULL DEFAULT 1,
      resolved_at      timestamptz,
      created_at       timestamptz NOT NULL DEFAULT now(),
      updated_at       timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT failed_opportunities_attempts_check CHECK (attempts >= 0)
    );
    CREATE TRIGGER failed_opportunities_set_updated_at BEFORE UPDATE ON public.failed_opportunities
      FOR EACH ROW EXECUTE FUNCTION crmsync.set_updated_at();
    CREATE INDEX failed_opportunities_unresolved_idx ON public.failed_opportunities (created_at DESC)
      WHERE resolved_at IS NULL;
  END IF;
END
$$;

-- One row per workflow run step worth keeping (the upstream workflow's; crmsync's own run records are in
-- crmsync.ingest_deliveries, see 0008).
DO $$
BEGIN
  IF to_regclass('public.workflow_logs') IS NULL THEN
    CREATE TABLE public.workflow_logs (
      id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      workflow         text NOT NULL,
      module           text,
      level            text NOT NULL DEFAULT 'info',
      message          text NOT NULL,
      details          jsonb,
      created_at       timestamptz NOT NULL DEFAULT now(),
      updated_at       timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT workflow_logs_level_check CHECK (level IN ('debug', 'info', 'warn', 'error'))
    );
    CREATE TRIGGER workflow_logs_set_updated_at BEFORE UPDATE ON public.workflow_logs
      FOR EACH ROW EXECUTE FUNCTION crmsync.set_updated_at();
    CREATE INDEX workflow_logs_created_at_idx ON public.workflow_logs (created_at DESC);
  END IF;
END
$$;

-- Errors worth a human look; the payload keeps the input so nothing is lost (the upstream workflow's; a match
-- crmsync rejects lands in crmsync.ingest_rejections, see 0008).
DO $$
BEGIN
  IF to_regclass('public.workflow_errors') IS NULL THEN
    CREATE TABLE public.workflow_errors (
      id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      workflow         text NOT NULL,
      module           text,
      error_message    text NOT NULL,
      field            text,
      payload          jsonb,
      retryable        boolean NOT NULL DEFAULT false,
      resolved_at      timestamptz,
      created_at       timestamptz NOT NULL DEFAULT now(),
      updated_at       timestamptz NOT NULL DEFAULT now()
    );
    CREATE TRIGGER workflow_errors_set_updated_at BEFORE UPDATE ON public.workflow_errors
      FOR EACH ROW EXECUTE FUNCTION crmsync.set_updated_at();
    CREATE INDEX workflow_errors_unresolved_idx ON public.workflow_errors (created_at DESC) WHERE resolved_at IS NULL;
  END IF;
END
$$;
