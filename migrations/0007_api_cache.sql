-- 0007_api_cache.sql: the dashboard statistics cache's generation, shared by every API instance.
--
-- Each API process (each Lambda instance) caches the dashboard statistics for 5 minutes. A cached value is valid
-- only while this counter still has the value it was loaded under: every write through the API bumps it in its
-- own transaction, so a write through one instance invalidates the caches of all of them, exactly when it commits.
-- A stats request reads it with one primary-key lookup.
--
-- Not bumped by triggers on deals, activities, sync_queue and the rest: a trigger would make every writing
-- transaction (ingest, webhooks, the outbound sync's claims) update this one row and hold its lock until commit,
-- serialising them all and opening deadlocks between them. Changes made outside the API show within the 5 minutes
-- the guide allows for these statistics.
CREATE TABLE crmsync.dashboard_cache_generation (
  id          boolean PRIMARY KEY DEFAULT true,
  generation  bigint NOT NULL DEFAULT 0,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT dashboard_cache_generation_one_row CHECK (id)
);
INSERT INTO crmsync.dashboard_cache_generation DEFAULT VALUES;
