-- Jobs and the media they produce. Times are milliseconds since the Unix epoch (BIGINT), the
-- same columns as the SQLite schema so one row type reads both.
CREATE TABLE jobs (
    id                 TEXT PRIMARY KEY,
    status             TEXT NOT NULL CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETE', 'REJECTED', 'FAILED')),
    source_type        TEXT NOT NULL,
    source_id          TEXT NOT NULL,
    staging_key        TEXT NOT NULL,
    original_filename  TEXT,
    mime_type          TEXT NOT NULL,
    file_size          BIGINT NOT NULL,
    media_id           TEXT,
    -- The media id the latest attempt stores under, so a later attempt can remove what a
    -- crashed one left behind.
    attempt_media_id   TEXT,
    attempts           BIGINT NOT NULL DEFAULT 0,
    max_attempts       BIGINT NOT NULL CHECK (max_attempts >= 1),
    error              TEXT,
    moderation_result  TEXT,
    moderation_details JSONB,
    locked_by          TEXT,
    locked_at          BIGINT,
    run_at             BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    -- A claim exists exactly while the job is PROCESSING.
    CHECK ((status = 'PROCESSING') = (locked_by IS NOT NULL AND locked_at IS NOT NULL)),
    -- A COMPLETE job names its media.
    CHECK ((status = 'COMPLETE') = (media_id IS NOT NULL))
);
-- Claims read the due PENDING jobs in order; rescues read the PROCESSING ones by heartbeat.
CREATE INDEX jobs_due ON jobs (run_at, created_at, id) WHERE status = 'PENDING';
CREATE INDEX jobs_claimed ON jobs (locked_at) WHERE status = 'PROCESSING';

CREATE TABLE media (
    id            TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL UNIQUE,
    source_type   TEXT NOT NULL,
    source_id     TEXT NOT NULL,
    variants      JSONB NOT NULL,
    original_key  TEXT,
    width         BIGINT NOT NULL,
    height        BIGINT NOT NULL,
    aspect_ratio  TEXT NOT NULL,
    blurhash      TEXT NOT NULL,
    format        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX media_source ON media (source_type, source_id, created_at);

-- Wake idle workers of every process whenever a job becomes claimable. The channel is named
-- after the schema so deployments sharing a database stay apart (see queue/postgres.rs).
CREATE FUNCTION jobs_notify_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('xip_' || md5(TG_TABLE_SCHEMA), '');
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_pending AFTER INSERT OR UPDATE OF status ON jobs
    FOR EACH ROW WHEN (NEW.status = 'PENDING') EXECUTE FUNCTION jobs_notify_pending();
