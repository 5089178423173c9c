-- Storage or database outages do not use up a job's attempts: it waits them out for the
-- transient window, counted from when the outage began (NULL when the job is not waiting one
-- out).
ALTER TABLE jobs ADD COLUMN outage_since BIGINT;
-- A FAILED job whose reason may pass (an outage past the window, attempts used up by failures
-- that may pass) keeps its staged upload, so an operator can put it back to PENDING; the
-- staging sweep leaves it.
ALTER TABLE jobs ADD COLUMN upload_kept BOOLEAN NOT NULL DEFAULT FALSE;
