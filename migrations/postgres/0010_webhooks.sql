-- Where a job's end is sent: its upload's callbackUrl, '' for the configured [webhooks] url,
-- NULL for nowhere (webhooks off when it was uploaded).
ALTER TABLE jobs ADD COLUMN webhook_url TEXT;

-- The outbox: one delivery per end of a job, written by the trigger below in the transaction
-- that records the end, whichever statement does (complete, reject, fail, a stale claim's
-- last attempt), so a crash between the two loses nothing. Sent by the worker processes.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    job_id          TEXT NOT NULL,
    event           TEXT NOT NULL,
    url             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    delivered_at    BIGINT,
    request_id      TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, created_at);

CREATE FUNCTION jobs_ended_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries
        (id, job_id, event, url, created_at, status, attempts, next_attempt_at, request_id)
    VALUES ('dlv_' || NEW.id || '_' || NEW.updated_at, NEW.id,
            CASE NEW.status WHEN 'COMPLETE' THEN 'job.completed'
                            WHEN 'REJECTED' THEN 'job.rejected' ELSE 'job.failed' END,
            NEW.webhook_url, NEW.updated_at, 'PENDING', 0, NEW.updated_at, NEW.request_id)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_ended_webhook AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (NEW.webhook_url IS NOT NULL AND OLD.status <> NEW.status
                       AND NEW.status IN ('COMPLETE', 'REJECTED', 'FAILED'))
    EXECUTE FUNCTION jobs_ended_webhook();
