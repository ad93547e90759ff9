-- 0005_webhooks.sql: what the inbound webhook handler (HubSpot → local) keeps beside the guide's tables.
-- All operational, so all in schema crmsync: public keeps exactly the guide's 11 tables.

-- Every webhook event received, deduplicated on HubSpot's key: eventId alone is "not guaranteed to be unique"
-- (https://developers.hubspot.com/docs/api/webhooks), so the key is (portalId, subscriptionId, eventId, occurredAt).
-- A request's events go in with one statement before the 2xx; they are applied afterwards in occurredAt order.
-- status: pending (stored, not applied yet), applied, skipped (echo, local-owned, older, unknown type or object:
-- `outcome` says which), retry (cannot be applied yet, e.g. a deal whose company is not local; due again at
-- next_attempt_at), dead (attempts spent).
CREATE TABLE crmsync.webhook_inbox (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  portal_id        bigint NOT NULL,
  subscription_id  bigint NOT NULL,
  event_id         bigint NOT NULL,
  occurred_at      bigint NOT NULL,
  event_type       text NOT NULL,
  object_type      text,
  object_id        text,
  payload          jsonb NOT NULL,
  status           text NOT NULL DEFAULT 'pending',
  outcome          text,
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_error       text,
  received_at      timestamptz NOT NULL DEFAULT now(),
  processed_at     timestamptz,
  CONSTRAINT webhook_inbox_event_key UNIQUE (portal_id, subscription_id, event_id, occurred_at),
  CONSTRAINT webhook_inbox_status_check CHECK (status IN ('pending', 'applied', 'skipped', 'retry', 'dead')),
  CONSTRAINT webhook_inbox_attempts_check CHECK (attempts >= 0)
);
-- The re-apply pass: due rows in occurredAt order.
CREATE INDEX webhook_inbox_due_idx ON crmsync.webhook_inbox (next_attempt_at, occurred_at)
  WHERE status IN ('pending', 'retry');
CREATE INDEX webhook_inbox_object_idx ON crmsync.webhook_inbox (object_type, object_id, occurred_at DESC);

-- When each tracked field of a local record last changed, and on which side: local edits are recorded by the
-- triggers below (changed_at = now()), HubSpot changes by the webhook handler (changed_at = the event's
-- occurredAt). "The newer change wins, per field" compares an event's occurredAt with this time. The
-- pseudo-field '@deleted' orders deletion and restore events.
CREATE TABLE crmsync.field_changes (
  entity_type  text NOT NULL,
  entity_id    uuid NOT NULL,
  field        text NOT NULL,
  changed_at   timestamptz NOT NULL,
  source       text NOT NULL DEFAULT 'local',
  PRIMARY KEY (entity_type, entity_id, field),
  CONSTRAINT field_changes_source_check CHECK (source IN ('local', 'hubspot'))
);

-- Every override between the two sides: a HubSpot change that lost (local-owned field, or an older change than
-- the local one), or a HubSpot change that replaced a local value not yet synced.
CREATE TABLE crmsync.sync_conflicts (
  id                  bigserial PRIMARY KEY,
  entity_type         text NOT NULL,
  entity_id           uuid NOT NULL,
  hubspot_id          text NOT NULL,
  property            text NOT NULL,
  local_value         text,
  hubspot_value       text,
  winner              text NOT NULL,
  rule                text NOT NULL,
  local_changed_at    timestamptz,
  hubspot_changed_at  timestamptz NOT NULL,
  inbox_id            uuid REFERENCES crmsync.webhook_inbox (id) ON DELETE SET NULL,
  created_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sync_conflicts_winner_check CHECK (winner IN ('local', 'hubspot')),
  CONSTRAINT sync_conflicts_rule_check CHECK (rule IN ('local_owned', 'hubspot_owned', 'newer_wins'))
);
CREATE INDEX sync_conflicts_entity_idx ON crmsync.sync_conflicts (entity_type, entity_id, created_at DESC);

-- Records the change time of each tracked column that an UPDATE changed. Arguments: the entity type, then the
-- column names. Fires only when the trigger's WHEN clause saw a tracked column change, so ingestion's updates of
-- local-owned columns cost nothing here.
CREATE FUNCTION crmsync.record_field_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  old_row jsonb := to_jsonb(OLD);
  new_row jsonb := to_jsonb(NEW);
  i integer;
BEGIN
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

CREATE TRIGGER deals_record_field_changes AFTER UPDATE ON public.deals
  FOR EACH ROW WHEN (OLD.stage IS DISTINCT FROM NEW.stage OR OLD.owner_id IS DISTINCT FROM NEW.owner_id
    OR OLD.description IS DISTINCT FROM NEW.description OR OLD.priority IS DISTINCT FROM NEW.priority)
  EXECUTE FUNCTION crmsync.record_field_changes('deal', 'stage', 'owner_id', 'description', 'priority');

CREATE TRIGGER companies_record_field_changes AFTER UPDATE ON public.companies
  FOR EACH ROW WHEN (OLD.lifecycle_stage IS DISTINCT FROM NEW.lifecycle_stage
    OR OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.description IS DISTINCT FROM NEW.description
    OR OLD.website IS DISTINCT FROM NEW.website OR OLD.phone IS DISTINCT FROM NEW.phone)
  EXECUTE FUNCTION crmsync.record_field_changes('company', 'lifecycle_stage', 'owner_id', 'description', 'website',
    'phone');

CREATE TRIGGER contacts_record_field_changes AFTER UPDATE ON public.contacts
  FOR EACH ROW WHEN (OLD.first_name IS DISTINCT FROM NEW.first_name OR OLD.last_name IS DISTINCT FROM NEW.last_name
    OR OLD.email IS DISTINCT FROM NEW.email OR OLD.phone IS DISTINCT FROM NEW.phone
    OR OLD.mobile_phone IS DISTINCT FROM NEW.mobile_phone OR OLD.job_title IS DISTINCT FROM NEW.job_title
    OR OLD.lifecycle_stage IS DISTINCT FROM NEW.lifecycle_stage OR OLD.owner_id IS DISTINCT FROM NEW.owner_id
    OR OLD.linkedin_url IS DISTINCT FROM NEW.linkedin_url)
  EXECUTE FUNCTION crmsync.record_field_changes('contact', 'first_name', 'last_name', 'email', 'phone',
    'mobile_phone', 'job_title', 'lifecycle_stage', 'owner_id', 'linkedin_url');
