-- A FAILED job carries a code from the contract (API.md §4a) beside its error sentence.
ALTER TABLE jobs ADD COLUMN error_code TEXT;
-- Jobs that failed before codes were recorded kept raw error text, which may hold paths or
-- decoder messages: they read as INTERNAL with its fixed sentence (the detail is in the logs).
UPDATE jobs SET error_code = 'INTERNAL',
                error = 'The image could not be processed because of an internal error.'
WHERE status = 'FAILED';

-- Who uploaded the job (its address, or the one a trusted proxy forwarded), so one client's
-- pending jobs can be capped; NULL when the client is unknown (an embedding without peers).
ALTER TABLE jobs ADD COLUMN client TEXT;
-- The fairness caps count pending jobs per source and per client at every upload.
CREATE INDEX jobs_pending_source ON jobs (source_type, source_id)
    WHERE status IN ('PENDING', 'PROCESSING');
CREATE INDEX jobs_pending_client ON jobs (client)
    WHERE status IN ('PENDING', 'PROCESSING') AND client IS NOT NULL;
