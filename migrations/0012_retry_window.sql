-- 0012_retry_window.sql: retries by failure class and the HubSpot circuit breaker (issue 12). The guide's
-- sync_queue columns are a contract, so what a retry window and a breaker need lives in crmsync tables beside it.

-- A sync_queue row's retryable failures (429, 5xx, 477, a timeout, a reset, an unknown outcome): when the first one
-- happened, which starts SYNC_RETRY_WINDOW, and how many there were. sync_queue.attempts still counts every attempt
-- (retry messages are matched on it); attempts minus retryable_failures is what SYNC_MAX_ATTEMPTS limits. A row
-- without one here has had no retryable failure.
CREATE TABLE crmsync.sync_retry_state (
  sync_queue_id       uuid PRIMARY KEY REFERENCES public.sync_queue (id) ON DELETE CASCADE,
  first_failed_at     timestamptz NOT NULL DEFAULT now(),
  retryable_failures  integer NOT NULL DEFAULT 0,
  CONSTRAINT sync_retry_state_failures_check CHECK (retryable_failures >= 0)
);

-- The circuit breaker in front of HubSpot, shared by every process (each Lambda invocation reads it): closed and
-- counting retryable failures in a row, open until a cool-down ends, or half open while one process probes.
CREATE TABLE crmsync.sync_circuit (
  name                  text PRIMARY KEY,
  state                 text NOT NULL DEFAULT 'closed',
  consecutive_failures  integer NOT NULL DEFAULT 0,
  -- Open: calls resume (with one probe) after this. Half open: the probe's holder has until then.
  open_until            timestamptz,
  opened_at             timestamptz,
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sync_circuit_state_check CHECK (state IN ('closed', 'open', 'half_open')),
  CONSTRAINT sync_circuit_failures_check CHECK (consecutive_failures >= 0)
);
INSERT INTO crmsync.sync_circuit (name) VALUES ('hubspot');
