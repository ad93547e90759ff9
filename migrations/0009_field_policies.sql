-- 0009_field_policies.sql: field policies (issue 11). Which side wins each synced property is configuration now
-- (crmsync_domain::policy), and it depends on where a record came from, so:

-- Records created in HubSpot (by a webhook, reconciliation or the first import). They have no automated source, so
-- none of their fields is ever `local`. Records made here (ingestion, the API) have no row.
CREATE TABLE crmsync.record_origins (
  entity_type  text NOT NULL,
  entity_id    uuid NOT NULL,
  origin       text NOT NULL DEFAULT 'hubspot',
  recorded_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (entity_type, entity_id),
  CONSTRAINT record_origins_entity_type_check CHECK (entity_type IN ('company', 'contact', 'deal')),
  CONSTRAINT record_origins_origin_check CHECK (origin IN ('hubspot'))
);
-- Records the webhook handler created before this migration: companies and contacts say so in `source`; a deal
-- created in HubSpot is the only kind without a match or an opportunity.
INSERT INTO crmsync.record_origins (entity_type, entity_id)
  SELECT 'company', id FROM public.companies WHERE source = 'hubspot'
  UNION ALL SELECT 'contact', id FROM public.contacts WHERE source = 'hubspot'
  UNION ALL SELECT 'deal', id FROM public.deals
    WHERE match_id IS NULL AND opportunity_id IS NULL AND hubspot_deal_id IS NOT NULL
ON CONFLICT DO NOTHING;

-- A conflict names the policy that decided it (local, hubspot, two_way, prefer_*_unless_blank).
ALTER TABLE crmsync.sync_conflicts DROP CONSTRAINT sync_conflicts_rule_check;
UPDATE crmsync.sync_conflicts SET rule = CASE rule
  WHEN 'local_owned' THEN 'local' WHEN 'hubspot_owned' THEN 'hubspot' WHEN 'newer_wins' THEN 'two_way' ELSE rule END;
ALTER TABLE crmsync.sync_conflicts ADD CONSTRAINT sync_conflicts_rule_check CHECK (rule IN (
  'local', 'hubspot', 'two_way', 'prefer_local_unless_blank', 'prefer_hubspot_unless_blank'));
CREATE INDEX sync_conflicts_created_at_idx ON crmsync.sync_conflicts (created_at DESC);

-- The applier writes HubSpot's change times itself, right after the columns: while it sets
-- crmsync.applying_hubspot for its transaction, the trigger below skips recording a local change it would overwrite.
CREATE OR REPLACE FUNCTION crmsync.record_field_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  old_row jsonb;
  new_row jsonb;
  i integer;
BEGIN
  IF current_setting('crmsync.applying_hubspot', true) = 'on' THEN
    RETURN NULL;
  END IF;
  old_row := to_jsonb(OLD);
  new_row := to_jsonb(NEW);
  FOR i IN 1 .. TG_NARGS - 1 LOOP
    IF old_row -> TG_ARGV[i] IS DISTINCT FROM new_row -> TG_ARGV[i] THEN
      INSERT INTO crmsync.field_changes (entity_type, entity_id, field, changed_at, source)
      VALUES (TG_ARGV[0], NEW.id, TG_ARGV[i], now(), 'local')
      ON CONFLICT (entity_type, entity_id, field)
      DO UPDATE SET changed_at = EXCLUDED.changed_at, source = 'local';
    END IF;
  END LOOP;
  RETURN NULL;
END;
$$;

-- The applier takes open inbox rows in occurredAt order: this index hands them over in that order, so a backlog
-- is not sorted again for every pass.
CREATE INDEX webhook_inbox_open_order_idx ON crmsync.webhook_inbox (occurred_at, event_id)
  WHERE status IN ('pending', 'retry');

-- Every mapped column's local change time is tracked now: a `two_way` field (any field of a record created in
-- HubSpot, or one an override makes two_way) is judged by it. The WHEN clauses still fire only on a real change.
DROP TRIGGER deals_record_field_changes ON public.deals;
CREATE TRIGGER deals_record_field_changes AFTER UPDATE ON public.deals
  FOR EACH ROW WHEN (OLD.stage IS DISTINCT FROM NEW.stage OR OLD.owner_id IS DISTINCT FROM NEW.owner_id
    OR OLD.description IS DISTINCT FROM NEW.description OR OLD.priority IS DISTINCT FROM NEW.priority
    OR OLD.deal_name IS DISTINCT FROM NEW.deal_name OR OLD.deal_value IS DISTINCT FROM NEW.deal_value
    OR OLD.expected_close_date IS DISTINCT FROM NEW.expected_close_date
    OR OLD.match_score IS DISTINCT FROM NEW.match_score OR OLD.win_probability IS DISTINCT FROM NEW.win_probability)
  EXECUTE FUNCTION crmsync.record_field_changes('deal', 'stage', 'owner_id', 'description', 'priority', 'deal_name',
    'deal_value', 'expected_close_date', 'match_score', 'win_probability');

DROP TRIGGER companies_record_field_changes ON public.companies;
CREATE TRIGGER companies_record_field_changes AFTER UPDATE ON public.companies
  FOR EACH ROW WHEN (OLD.lifecycle_stage IS DISTINCT FROM NEW.lifecycle_stage
    OR OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.description IS DISTINCT FROM NEW.description
    OR OLD.website IS DISTINCT FROM NEW.website OR OLD.phone IS DISTINCT FROM NEW.phone
    OR OLD.name IS DISTINCT FROM NEW.name OR OLD.address IS DISTINCT FROM NEW.address
    OR OLD.city IS DISTINCT FROM NEW.city OR OLD.state IS DISTINCT FROM NEW.state OR OLD.zip IS DISTINCT FROM NEW.zip
    OR OLD.uei IS DISTINCT FROM NEW.uei OR OLD.cage_code IS DISTINCT FROM NEW.cage_code
    OR OLD.primary_naics IS DISTINCT FROM NEW.primary_naics
    OR OLD.readiness_score IS DISTINCT FROM NEW.readiness_score)
  EXECUTE FUNCTION crmsync.record_field_changes('company', 'lifecycle_stage', 'owner_id', 'description', 'website',
    'phone', 'name', 'address', 'city', 'state', 'zip', 'uei', 'cage_code', 'primary_naics', 'readiness_score');
