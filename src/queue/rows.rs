//! Rows as both databases return them, and their conversion into [`Job`] and [`Media`].
//!
//! The column types are chosen to read alike in SQLite and PostgreSQL (`TEXT`, 64-bit integers,
//! JSON), so one `FromRow` serves both stores. It is written out rather than derived so the build
//! needs no sqlx proc-macro (see `migrations.rs`).

use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, FromRow, Row, Type};

use super::{
    IdempotencyKey, Inserted, Job, JobCounts, JobErrorCode, JobId, JobStatus, Media, MediaId,
    NewJob, QueueError, StoredVariant, TokenId,
};

/// A `jobs` row.
pub(super) struct JobRow {
    id: String,
    status: String,
    source_type: String,
    source_id: String,
    staging_key: String,
    original_filename: Option<String>,
    mime_type: String,
    file_size: i64,
    media_id: Option<String>,
    attempt_media_id: Option<String>,
    attempts: i64,
    max_attempts: i64,
    error: Option<String>,
    error_code: Option<String>,
    client: Option<String>,
    moderation_result: Option<String>,
    moderation_details: Option<Json<serde_json::Value>>,
    locked_by: Option<String>,
    locked_at: Option<i64>,
    run_at: i64,
    created_at: i64,
    updated_at: i64,
    outage_since: Option<i64>,
    upload_kept: bool,
    token_id: Option<String>,
    request_id: Option<String>,
    trace_parent: Option<String>,
    webhook_url: Option<String>,
}

impl<'r, R> FromRow<'r, R> for JobRow
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    Json<serde_json::Value>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(JobRow {
            id: row.try_get("id")?,
            status: row.try_get("status")?,
            source_type: row.try_get("source_type")?,
            source_id: row.try_get("source_id")?,
            staging_key: row.try_get("staging_key")?,
            original_filename: row.try_get("original_filename")?,
            mime_type: row.try_get("mime_type")?,
            file_size: row.try_get("file_size")?,
            media_id: row.try_get("media_id")?,
            attempt_media_id: row.try_get("attempt_media_id")?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            error: row.try_get("error")?,
            error_code: row.try_get("error_code")?,
            client: row.try_get("client")?,
            moderation_result: row.try_get("moderation_result")?,
            moderation_details: row.try_get("moderation_details")?,
            locked_by: row.try_get("locked_by")?,
            locked_at: row.try_get("locked_at")?,
            run_at: row.try_get("run_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            outage_since: row.try_get("outage_since")?,
            upload_kept: row.try_get("upload_kept")?,
            token_id: row.try_get("token_id")?,
            request_id: row.try_get("request_id")?,
            trace_parent: row.try_get("trace_parent")?,
            webhook_url: row.try_get("webhook_url")?,
        })
    }
}

impl TryFrom<JobRow> for Job {
    type Error = QueueError;

    fn try_from(row: JobRow) -> Result<Job, QueueError> {
        Ok(Job {
            status: JobStatus::parse(&row.status).ok_or_else(|| {
                QueueError::Corrupt(format!("unknown job status {:?}", row.status))
            })?,
            id: JobId::from_string(row.id),
            source_type: row.source_type,
            source_id: row.source_id,
            staging_key: row.staging_key,
            original_filename: row.original_filename,
            mime_type: row.mime_type,
            file_size: row.file_size,
            media_id: row.media_id.map(MediaId::from_string),
            attempt_media_id: row.attempt_media_id.map(MediaId::from_string),
            attempts: count(row.attempts, "attempts")?,
            max_attempts: count(row.max_attempts, "max_attempts")?,
            error: row.error,
            error_code: row
                .error_code
                .map(|word| {
                    JobErrorCode::parse(&word)
                        .ok_or_else(|| QueueError::Corrupt(format!("unknown error code {word:?}")))
                })
                .transpose()?,
            client: row.client,
            moderation_result: row.moderation_result,
            moderation_details: row.moderation_details.map(|Json(v)| v),
            locked_by: row.locked_by,
            locked_at: row.locked_at,
            run_at: row.run_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            outage_since: row.outage_since,
            upload_kept: row.upload_kept,
            token_id: row.token_id.map(TokenId::from_string),
            request_id: row.request_id,
            trace_parent: row.trace_parent,
            webhook_url: row.webhook_url,
        })
    }
}

/// A `media` row.
pub(super) struct MediaRow {
    id: String,
    job_id: String,
    source_type: String,
    source_id: String,
    variants: Json<Vec<(String, StoredVariant)>>,
    original_key: Option<String>,
    width: i64,
    height: i64,
    aspect_ratio: String,
    blurhash: String,
    format: String,
    created_at: i64,
}

impl<'r, R> FromRow<'r, R> for MediaRow
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Json<Vec<(String, StoredVariant)>>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(MediaRow {
            id: row.try_get("id")?,
            job_id: row.try_get("job_id")?,
            source_type: row.try_get("source_type")?,
            source_id: row.try_get("source_id")?,
            variants: row.try_get("variants")?,
            original_key: row.try_get("original_key")?,
            width: row.try_get("width")?,
            height: row.try_get("height")?,
            aspect_ratio: row.try_get("aspect_ratio")?,
            blurhash: row.try_get("blurhash")?,
            format: row.try_get("format")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl TryFrom<MediaRow> for Media {
    type Error = QueueError;

    fn try_from(row: MediaRow) -> Result<Media, QueueError> {
        Ok(Media {
            id: MediaId::from_string(row.id),
            job_id: JobId::from_string(row.job_id),
            source_type: row.source_type,
            source_id: row.source_id,
            variants: row.variants.0,
            original_key: row.original_key,
            width: count(row.width, "width")?,
            height: count(row.height, "height")?,
            aspect_ratio: row.aspect_ratio,
            blurhash: row.blurhash,
            format: row.format,
            created_at: row.created_at,
        })
    }
}

fn count(value: i64, column: &str) -> Result<u32, QueueError> {
    u32::try_from(value).map_err(|_| QueueError::Corrupt(format!("{column} is {value}")))
}

/// Converts an optional row.
pub(super) fn optional<R, T>(row: Option<R>) -> Result<Option<T>, QueueError>
where
    T: TryFrom<R, Error = QueueError>,
{
    row.map(T::try_from).transpose()
}

/// Converts every row.
pub(super) fn all<R, T>(rows: Vec<R>) -> Result<Vec<T>, QueueError>
where
    T: TryFrom<R, Error = QueueError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// The rows of `COUNT_JOBS` (status, jobs, oldest pending) as [`JobCounts`].
pub(super) fn counts(rows: Vec<(String, i64, Option<i64>)>) -> Result<JobCounts, QueueError> {
    let mut counts = JobCounts::default();
    for (status, jobs, oldest) in rows {
        let status = JobStatus::parse(&status)
            .ok_or_else(|| QueueError::Corrupt(format!("unknown job status {status:?}")))?;
        let jobs = u64::try_from(jobs)
            .map_err(|_| QueueError::Corrupt(format!("a count of {jobs} jobs")))?;
        counts.by_status.push((status, jobs));
        counts.oldest_pending = counts.oldest_pending.or(oldest);
    }
    Ok(counts)
}

/// Rows of (id, status) as typed pairs.
pub(super) fn statuses(rows: Vec<(String, String)>) -> Result<Vec<(JobId, JobStatus)>, QueueError> {
    rows.into_iter()
        .map(|(id, status)| {
            let status = JobStatus::parse(&status)
                .ok_or_else(|| QueueError::Corrupt(format!("unknown job status {status:?}")))?;
            Ok((JobId::from_string(id), status))
        })
        .collect()
}

/// What a live idempotency key's record (job, source type, source id, SHA-256) means for a
/// repeat of `job` under `key`: the same upload again, or the key reused for another.
pub(super) fn held_key(
    (job_id, source_type, source_id, sha256): (String, String, String, String),
    job: &NewJob,
    key: &IdempotencyKey,
) -> Inserted {
    if source_type == job.source_type && source_id == job.source_id && sha256 == key.sha256 {
        Inserted::Replay(JobId::from_string(job_id))
    } else {
        Inserted::KeyReused
    }
}
