-- The request that uploaded a job, so one search of the logs finds its whole life across the
-- API and worker processes.
ALTER TABLE jobs ADD COLUMN request_id TEXT;
-- Ended jobs are removed after the retention period, oldest first, by this index.
CREATE INDEX jobs_ended ON jobs (status, updated_at);
-- One row the readiness check writes: the database is reachable and takes writes.
CREATE TABLE readiness (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at BIGINT NOT NULL
);
