//! The SQL both job stores run, written once.
//!
//! `$N` placeholders mean the same in SQLite and PostgreSQL (sqlx binds SQLite's `$N` by number),
//! and the column types are chosen to read alike (see `rows.rs`), so every statement here serves
//! both `sqlite.rs` and `postgres.rs`. Only what really differs between the engines is written
//! twice, next to its store: the claim (`FOR UPDATE SKIP LOCKED` against SQLite's
//! `BEGIN IMMEDIATE`) and PostgreSQL's notification channel.
//!
//! Every transition out of PROCESSING is fenced by `locked_by = $2 AND status = 'PROCESSING'`:
//! a worker that lost its claim changes nothing.

/// Inserts a PENDING job ($1 id … $8 max_attempts, $10 client), due, created and updated at
/// $9, unless its source already has $11 pending jobs or its client (when known) $12; $13 to $16
/// are its token, request id, trace parent and webhook URL.
///
/// The counts and the insert are one statement: SQLite runs it under the write lock, so the
/// caps hold exactly; PostgreSQL (READ COMMITTED) lets uploads of one source inserted at the
/// same instant each see the count before the others, so a cap can be passed by at most the
/// number of such concurrent inserts.
pub(super) const INSERT_JOB: &str = "
    INSERT INTO jobs (id, status, source_type, source_id, staging_key, original_filename,
                      mime_type, file_size, max_attempts, run_at, created_at, updated_at,
                      client, token_id, request_id, trace_parent, webhook_url)
    SELECT $1, 'PENDING', $2, $3, $4, $5, $6, $7, $8, $9, $9, $9, $10, $13, $14, $15, $16
    WHERE (SELECT count(*) FROM jobs
           WHERE source_type = $2 AND source_id = $3
             AND status IN ('PENDING', 'PROCESSING')) < $11
      AND ($10 IS NULL
           OR (SELECT count(*) FROM jobs
               WHERE client = $10 AND status IN ('PENDING', 'PROCESSING')) < $12)";

/// The job with id $1.
pub(super) const GET_JOB: &str = "SELECT * FROM jobs WHERE id = $1";

/// Records the media id $3 the claimed attempt of job $1 by worker $2 stores under.
pub(super) const START_ATTEMPT: &str = "
    UPDATE jobs SET attempt_media_id = $3
    WHERE id = $1 AND locked_by = $2 AND status = 'PROCESSING'";

/// Refreshes the claim of job $1 by worker $2 at $3.
pub(super) const HEARTBEAT: &str = "
    UPDATE jobs SET locked_at = $3
    WHERE id = $1 AND locked_by = $2 AND status = 'PROCESSING'";

/// Marks job $1 of worker $2 COMPLETE with media $3 at $4 (in one transaction with
/// [`INSERT_MEDIA`]).
pub(super) const COMPLETE_JOB: &str = "
    UPDATE jobs SET status = 'COMPLETE', media_id = $3, error = NULL, error_code = NULL,
           locked_by = NULL, locked_at = NULL, updated_at = $4
    WHERE id = $1 AND locked_by = $2 AND status = 'PROCESSING'";

/// Inserts a media record, its columns in table order ($1 id … $12 created_at).
pub(super) const INSERT_MEDIA: &str = "
    INSERT INTO media (id, job_id, source_type, source_id, variants, original_key,
                       width, height, aspect_ratio, blurhash, format, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// Records moderation verdict $3 with details $4 on job $1 of worker $2.
pub(super) const RECORD_MODERATION: &str = "
    UPDATE jobs SET moderation_result = $3, moderation_details = $4
    WHERE id = $1 AND locked_by = $2 AND status = 'PROCESSING'";

/// Ends job $1 of worker $2 REJECTED with moderation details $3 at $4.
pub(super) const REJECT: &str = "
    UPDATE jobs SET status = 'REJECTED', moderation_result = 'REJECTED',
           moderation_details = $3, locked_by = NULL, locked_at = NULL, updated_at = $4
    WHERE id = $1 AND locked_by = $2 AND status = 'PROCESSING'";

/// Ends job $1 of worker $2 FAILED with code $3 and error sentence $4 at $5, keeping its
/// upload when $6.
pub(super) const FAIL: &str = "
    UPDATE jobs SET status = 'FAILED', error_code = $3, error = $4, upload_kept = $6,
           outage_since = NULL, locked_by = NULL, locked_at = NULL, updated_at = $5
    WHERE id = $1 AND locked_by = $2 AND status = 'PROCESSING'";

/// Puts job $1 of worker $2 back to PENDING with code $3 and error sentence $4 of the failed
/// attempt, due at $5, updated at $6. The attempt counts; an outage it was waiting out is over.
pub(super) const RETRY: &str = "
    UPDATE jobs SET status = 'PENDING', error_code = $3, error = $4, run_at = $5,
           outage_since = NULL, locked_by = NULL, locked_at = NULL, updated_at = $6
    WHERE id = $1 AND locked_by = $2 AND status = 'PROCESSING'";

/// Like [`RETRY`], but the attempt is given back (storage or the database was unavailable)
/// and the outage is dated from its first deferral.
pub(super) const DEFER: &str = "
    UPDATE jobs SET status = 'PENDING', error_code = $3, error = $4, run_at = $5,
           attempts = attempts - 1, outage_since = COALESCE(outage_since, $6),
           locked_by = NULL, locked_at = NULL, updated_at = $6
    WHERE id = $1 AND locked_by = $2 AND status = 'PROCESSING'";

/// Puts FAILED job $1 whose upload was kept back to PENDING at $2, as if new.
pub(super) const REQUEUE: &str = "
    UPDATE jobs SET status = 'PENDING', attempts = 0, error = NULL, error_code = NULL,
           outage_since = NULL, upload_kept = FALSE,
           run_at = $2, updated_at = $2
    WHERE id = $1 AND status = 'FAILED' AND upload_kept
    RETURNING *";

/// Hands back every job worker $1 holds, at $2: PENDING and due at once, the attempt given
/// back (a shutdown cut it off, not the image).
pub(super) const RELEASE: &str = "
    UPDATE jobs SET status = 'PENDING', attempts = attempts - 1, run_at = $2,
           locked_by = NULL, locked_at = NULL, updated_at = $2
    WHERE locked_by = $1 AND status = 'PROCESSING'";

/// Takes back claims with a heartbeat before $1, at $2: PENDING and due at once, or FAILED when
/// no attempt is left (keeping the upload: a worker that died, perhaps killed for memory, may
/// not die next time). One statement, so two rescuers at once touch each job once (a row the
/// other took back no longer matches).
pub(super) const RESCUE_STALE: &str = "
    UPDATE jobs SET locked_by = NULL, locked_at = NULL, updated_at = $2,
           status = CASE WHEN attempts >= max_attempts THEN 'FAILED' ELSE 'PENDING' END,
           run_at = CASE WHEN attempts >= max_attempts THEN run_at ELSE $2 END,
           error = CASE WHEN attempts >= max_attempts
               THEN 'The worker processing this image stopped responding on every attempt.'
               ELSE error END,
           error_code = CASE WHEN attempts >= max_attempts THEN 'INTERNAL' ELSE error_code END,
           upload_kept = attempts >= max_attempts
    WHERE status = 'PROCESSING' AND locked_at < $1
    RETURNING *";

/// The earliest `run_at` of a PENDING job (NULL when there is none).
pub(super) const NEXT_RUN_AT: &str = "SELECT MIN(run_at) FROM jobs WHERE status = 'PENDING'";

/// The media record with id $1.
pub(super) const GET_MEDIA: &str = "SELECT * FROM media WHERE id = $1";

/// At most $5 media of source type $1 and source id $2, newest first, from those before the
/// position ($3 created_at, $4 id) on: a keyset page, stable while new media arrive (they sort
/// before any cursor). The first page starts before (`i64::MAX`, '').
pub(super) const LIST_MEDIA: &str = "
    SELECT * FROM media WHERE source_type = $1 AND source_id = $2
      AND (created_at, id) < ($3, $4)
    ORDER BY created_at DESC, id DESC
    LIMIT $5";

/// Deletes the media record with id $1.
pub(super) const DELETE_MEDIA: &str = "DELETE FROM media WHERE id = $1";

/// Spends single-use token $1, valid until $2: inserts nothing (and so affects no row) when it
/// was spent before.
pub(super) const SPEND_TOKEN: &str = "
    INSERT INTO spent_tokens (id, expires_at) VALUES ($1, $2)
    ON CONFLICT (id) DO NOTHING";

/// Forgets spent tokens that expired before $1: they are refused as expired anyway.
pub(super) const FORGET_SPENT_TOKENS: &str = "DELETE FROM spent_tokens WHERE expires_at < $1";

/// Records idempotency key $2 of caller $1 for job $3 (source $4/$5, file $6), answering
/// repeats until $7, unless the key is held by a job and not yet expired at $8: then nothing
/// is written (0 rows). Inside the job's insert transaction, so a refused upload records
/// nothing, and concurrent repeats wait on the first (PostgreSQL's unique index; SQLite's write
/// lock) and then see its row.
pub(super) const CLAIM_IDEMPOTENCY_KEY: &str = "
    INSERT INTO idempotency_keys (scope, idem_key, job_id, source_type, source_id, sha256,
                                  expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (scope, idem_key) DO UPDATE
        SET job_id = excluded.job_id, source_type = excluded.source_type,
            source_id = excluded.source_id, sha256 = excluded.sha256,
            expires_at = excluded.expires_at
        WHERE idempotency_keys.expires_at <= $8";

/// The upload that holds idempotency key $2 of caller $1: job, source type and id, SHA-256.
pub(super) const HELD_IDEMPOTENCY_KEY: &str = "
    SELECT job_id, source_type, source_id, sha256 FROM idempotency_keys
    WHERE scope = $1 AND idem_key = $2";

/// Forgets idempotency keys expired before $1.
pub(super) const FORGET_IDEMPOTENCY_KEYS: &str =
    "DELETE FROM idempotency_keys WHERE expires_at < $1";

/// Records a readiness check at $1: the database takes writes.
pub(super) const TOUCH_READINESS: &str = "
    INSERT INTO readiness (id, checked_at) VALUES (1, $1)
    ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at";

/// How many jobs are in each state, and the creation time of the oldest PENDING one.
pub(super) const COUNT_JOBS: &str = "
    SELECT status, count(*) AS jobs,
           min(CASE WHEN status = 'PENDING' THEN created_at END) AS oldest
    FROM jobs GROUP BY status";

/// Removes ended jobs last changed before $1 (their media stay).
pub(super) const FORGET_ENDED_JOBS: &str = "
    DELETE FROM jobs
    WHERE status IN ('COMPLETE', 'REJECTED', 'FAILED') AND updated_at < $1";

/// At most $2 jobs, newest first, of status $1 (any when NULL).
pub(super) const LIST_JOBS: &str = "
    SELECT * FROM jobs WHERE ($1 IS NULL OR status = $1)
    ORDER BY created_at DESC, id DESC LIMIT $2";
