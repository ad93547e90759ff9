-- Seed data for the end-to-end tests (schemathesis and the browser test): a few companies with deals in every
-- stage, contacts, activities, queue rows and a sync run. Fixed ids, so the tests can name them.
INSERT INTO companies (id, name, uei, readiness_score, qualification_status, city, state) VALUES
  ('10000000-0000-4000-8000-000000000001', 'Atlas Federal Services', 'ATLASFED0001', 92, 'qualified', 'Arlington', 'VA'),
  ('10000000-0000-4000-8000-000000000002', 'Beacon Cyber LLC', 'BEACONCY0002', 81, 'qualified', 'Columbia', 'MD'),
  ('10000000-0000-4000-8000-000000000003', 'Cobalt Logistics', 'COBALTLG0003', 64, 'unqualified', 'Dayton', 'OH');

INSERT INTO deals (id, company_id, deal_name, deal_value, stage, priority, win_probability, closed_at) VALUES
  ('20000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000001', 'Cloud migration for VA - Atlas Federal Services', 1250000, 'new_match', 'high', 70, NULL),
  ('20000000-0000-4000-8000-000000000002', '10000000-0000-4000-8000-000000000001', 'Help desk modernization - Atlas Federal Services', 480000, 'initial_outreach', 'medium', 62, NULL),
  ('20000000-0000-4000-8000-000000000003', '10000000-0000-4000-8000-000000000002', 'Zero trust assessment - Beacon Cyber LLC', 860000, 'contact_made', 'high', 74, NULL),
  ('20000000-0000-4000-8000-000000000004', '10000000-0000-4000-8000-000000000002', 'SOC as a service - Beacon Cyber LLC', 2100000, 'qualified', 'medium', 58, NULL),
  ('20000000-0000-4000-8000-000000000005', '10000000-0000-4000-8000-000000000003', 'Fleet telematics - Cobalt Logistics', 340000, 'proposal_sent', 'low', 40, NULL),
  ('20000000-0000-4000-8000-000000000006', '10000000-0000-4000-8000-000000000003', 'Warehouse RFID - Cobalt Logistics', 150000, 'negotiation', 'medium', 55, NULL),
  ('20000000-0000-4000-8000-000000000007', '10000000-0000-4000-8000-000000000001', 'Records digitization - Atlas Federal Services', 720000, 'closed_won', 'medium', 80, '2026-09-14T16:00:00Z'),
  ('20000000-0000-4000-8000-000000000008', '10000000-0000-4000-8000-000000000002', 'Pen testing IDIQ - Beacon Cyber LLC', 300000, 'closed_lost', 'low', 35, '2026-10-03T16:00:00Z'),
  ('20000000-0000-4000-8000-000000000009', '10000000-0000-4000-8000-000000000002', 'Identity platform - Beacon Cyber LLC', 910000, 'closed_won', 'high', 77, '2026-10-21T16:00:00Z');

INSERT INTO contacts (id, company_id, full_name, email, job_title) VALUES
  ('30000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000001', 'Dana Whitfield', 'dana@atlasfed.example', 'Capture Manager'),
  ('30000000-0000-4000-8000-000000000002', '10000000-0000-4000-8000-000000000002', 'Marcus Ruiz', 'marcus@beaconcyber.example', 'CEO');

INSERT INTO activities (activity_type, subject, company_id, contact_id, deal_id, created_at) VALUES
  ('call', 'Intro call with capture team', '10000000-0000-4000-8000-000000000001', '30000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000001', now() - interval '2 days'),
  ('email', 'Sent capability statement', '10000000-0000-4000-8000-000000000002', '30000000-0000-4000-8000-000000000002', '20000000-0000-4000-8000-000000000003', now() - interval '1 day');

-- HubSpot's owners as `crmsync owners refresh` caches them (one deactivated), a deal assigned to one, and a call a
-- salesperson logged in HubSpot, as the webhook applier stores it (logged_in 'hubspot', its engagement id and owner).
INSERT INTO crmsync.hubspot_owners (id, email, first_name, last_name, user_id, archived) VALUES
  ('41001', 'avery.cole@example.com', 'Avery', 'Cole', 9041001, false),
  ('41002', 'jordan.reyes@example.com', 'Jordan', 'Reyes', 9041002, false),
  ('41003', 'sam.patel@example.com', 'Sam', 'Patel', 9041003, true);
UPDATE deals SET owner_id = '41002' WHERE id = '20000000-0000-4000-8000-000000000004';
INSERT INTO activities (activity_type, subject, body, status, company_id, deal_id, occurred_at, created_at,
    hubspot_engagement_id, hubspot_sync_status, logged_in, owner_id, created_by) VALUES
  ('call', 'Debrief call with the contracting officer', 'They liked the past performance volume.', 'completed',
   '10000000-0000-4000-8000-000000000002', '20000000-0000-4000-8000-000000000004', now() - interval '3 hours',
   now() - interval '3 hours', '9001', 'synced', 'hubspot', '41001', 'hubspot');

INSERT INTO sync_queue (entity_type, entity_id, operation, status) VALUES
  ('deal', '20000000-0000-4000-8000-000000000001', 'create', 'pending'),
  ('company', '10000000-0000-4000-8000-000000000003', 'update', 'failed');

-- A deal HubSpot refused for good: its sync item is dead, so the deal is failed (as PgSyncStore::fail leaves it).
INSERT INTO sync_queue (entity_type, entity_id, operation, status, attempts, last_error) VALUES
  ('deal', '20000000-0000-4000-8000-000000000005', 'update', 'dead', 1,
   'permanent: HubSpot refused the input: Property values were not valid: dealstage');
UPDATE deals SET hubspot_sync_status = 'failed' WHERE id = '20000000-0000-4000-8000-000000000005';

-- Two values the sync dropped: a HubSpot edit of a local field, reverted; a local phone a newer HubSpot edit replaced.
INSERT INTO crmsync.sync_conflicts (entity_type, entity_id, hubspot_id, property, local_value, hubspot_value, winner,
    rule, local_changed_at, hubspot_changed_at, created_at) VALUES
  ('deal', '20000000-0000-4000-8000-000000000001', '5001', 'dealname',
   'Cloud migration for VA - Atlas Federal Services', 'VA cloud move', 'local', 'local', NULL,
   now() - interval '3 hours', now() - interval '3 hours'),
  ('company', '10000000-0000-4000-8000-000000000002', '4002', 'phone', '+1 410 555 0100', '+1 410 555 0199',
   'hubspot', 'two_way', now() - interval '2 days', now() - interval '1 hour', now() - interval '1 hour');

INSERT INTO crmsync.sync_runs (trigger, status, started_at, finished_at, counts) VALUES
  ('schedule', 'succeeded', now() - interval '4 minutes', now() - interval '4 minutes' + interval '3 seconds', '{"companies": 2, "deals": 5}');
