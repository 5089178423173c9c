-- Jobs and the media they produce. Times are milliseconds since the Unix epoch.
CREATE TABLE jobs (
    id                 TEXT PRIMARY KEY NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETE', 'REJECTED', 'FAILED')),
    source_type        TEXT NOT NULL,
    source_id          TEXT NOT NULL,
    staging_key        TEXT NOT NULL,
    original_filename  TEXT,
    mime_type          TEXT NOT NULL,
    file_size          INTEGER NOT NULL,
    media_id           TEXT,
    -- The media id the latest attempt stores under, so a later attempt can remove what a
    -- crashed one left behind.
    attempt_media_id   TEXT,
    attempts           INTEGER NOT NULL DEFAULT 0,
    max_attempts       INTEGER NOT NULL CHECK (max_attempts >= 1),
    error              TEXT,
    moderation_result  TEXT,
    moderation_details TEXT,
    locked_by          TEXT,
    locked_at          INTEGER,
    run_at             INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    -- A claim exists exactly while the job is PROCESSING.
    CHECK ((status = 'PROCESSING') = (locked_by IS NOT NULL AND locked_at IS NOT NULL)),
    -- A COMPLETE job names its media.
    CHECK ((status = 'COMPLETE') = (media_id IS NOT NULL))
);
CREATE INDEX jobs_due ON jobs (status, run_at);

CREATE TABLE media (
    id            TEXT PRIMARY KEY NOT NULL,
    job_id        TEXT NOT NULL UNIQUE,
    source_type   TEXT NOT NULL,
    source_id     TEXT NOT NULL,
    variants      TEXT NOT NULL,
    original_key  TEXT,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    aspect_ratio  TEXT NOT NULL,
    blurhash      TEXT NOT NULL,
    format        TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX media_source ON media (source_type, source_id, created_at);
