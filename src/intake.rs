//! Intake: turning an upload into a PENDING job, or into a clear refusal with nothing left behind.
//!
//! The HTTP route streams the file into staging first (fields may come in any order), then calls
//! [`enqueue`]; the library's `submit` stages bytes it already holds. Either way the checks run
//! in the contract's order and any refusal deletes the staging object before it is reported.

use bytes::Bytes;

use crate::ImagePipeline;
use crate::pipeline::{self, PipelineError, sniff::Sniffed};
use crate::queue::{JobId, NewJob, QueueError, now_ms};
use crate::storage::StorageError;

/// How many leading bytes of an upload are kept in memory for sniffing and the header probe.
pub const HEAD_BYTES: usize = 1 << 20;

/// Why an upload was refused. Each variant is one contract code (`http::ApiError` maps them).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// No `file` part was sent.
    #[error("No file provided")]
    NoFile,
    /// `sourceType` or `sourceId` is missing or empty.
    #[error("sourceType and sourceId are required")]
    MissingFields,
    /// The source type is not configured.
    #[error("Unknown sourceType: {0}")]
    UnknownSourceType(String),
    /// The source id does not match `^[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}$`.
    #[error("Invalid sourceId")]
    InvalidSourceId,
    /// The upload is over `max_file_size`.
    #[error("File too large. Maximum size: {}MB", .max_bytes / 1_048_576)]
    FileTooLarge {
        /// The configured limit.
        max_bytes: u64,
    },
    /// The sniffed type is not in `allowed_mime_types`.
    #[error("File type {mime} not allowed")]
    TypeNotAllowed {
        /// The type sniffed from the bytes.
        mime: String,
    },
    /// The header cannot be read, or declares a size over the limits.
    #[error("{0}")]
    Unreadable(#[source] PipelineError),
    /// The staging write failed.
    #[error("Failed to upload file to storage")]
    Storage(#[source] StorageError),
    /// The job insert failed.
    #[error("Failed to create processing job")]
    Queue(#[source] QueueError),
}

/// An upload already written to staging.
pub struct Staged {
    /// The job it will become.
    pub job_id: JobId,
    /// Its staging key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its first bytes (at most [`HEAD_BYTES`]).
    pub head: Vec<u8>,
    /// The client's file name, if any.
    pub filename: Option<String>,
}

/// Whether `id` is a valid `sourceId` (it becomes part of object keys).
pub fn is_valid_source_id(id: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    id.len() <= 128 && id.starts_with(|c: char| c.is_ascii_alphanumeric()) && id.chars().all(ok)
}

/// Checks the form fields, in the contract's order.
///
/// # Errors
/// `MissingFields`, `UnknownSourceType` or `InvalidSourceId`.
pub fn check_fields(
    pipeline: &ImagePipeline,
    source_type: Option<&str>,
    source_id: Option<&str>,
) -> Result<(), SubmitError> {
    let (Some(source_type), Some(source_id)) = (source_type, source_id) else {
        return Err(SubmitError::MissingFields);
    };
    if source_type.is_empty() || source_id.is_empty() {
        return Err(SubmitError::MissingFields);
    }
    if !pipeline.config().source_types.contains_key(source_type) {
        return Err(SubmitError::UnknownSourceType(source_type.to_owned()));
    }
    if !is_valid_source_id(source_id) {
        return Err(SubmitError::InvalidSourceId);
    }
    Ok(())
}

/// Writes bytes the caller already holds to staging.
///
/// # Errors
/// `FileTooLarge` or `Storage`.
pub async fn stage_bytes(pipeline: &ImagePipeline, bytes: Bytes) -> Result<Staged, SubmitError> {
    let max_bytes = pipeline.config().max_file_size;
    if bytes.len() as u64 > max_bytes {
        return Err(SubmitError::FileTooLarge { max_bytes });
    }
    let job_id = JobId::generate();
    let key = pipeline.storage().keys().staging(&job_id);
    let head = bytes[..bytes.len().min(HEAD_BYTES)].to_vec();
    let size = bytes.len() as u64;
    pipeline
        .storage()
        .put(&key, bytes)
        .await
        .map_err(SubmitError::Storage)?;
    Ok(Staged {
        job_id,
        key,
        size,
        head,
        filename: None,
    })
}

/// Checks a staged upload and inserts its job; on any refusal the staging object is deleted.
///
/// # Errors
/// Any [`SubmitError`] but `FileTooLarge`, in the contract's order.
pub async fn enqueue(
    pipeline: &ImagePipeline,
    staged: Staged,
    source_type: Option<&str>,
    source_id: Option<&str>,
) -> Result<JobId, SubmitError> {
    let result = checked_insert(pipeline, &staged, source_type, source_id).await;
    if result.is_err()
        && let Err(e) = pipeline.storage().delete(&staged.key).await
    {
        tracing::warn!(key = %staged.key, error = %e, "could not remove a refused upload; cleanup will retry");
    }
    result.map(|()| staged.job_id)
}

async fn checked_insert(
    pipeline: &ImagePipeline,
    staged: &Staged,
    source_type: Option<&str>,
    source_id: Option<&str>,
) -> Result<(), SubmitError> {
    check_fields(pipeline, source_type, source_id)?;
    let config = pipeline.config();
    if staged.size == 0 {
        return Err(SubmitError::Unreadable(PipelineError::Empty));
    }
    let mime = match pipeline::sniff::detect(&staged.head) {
        Sniffed::Image(format) => format.mime(),
        Sniffed::Other(mime) => mime,
    };
    if !config.allowed_mime_types.iter().any(|m| m == mime) {
        return Err(SubmitError::TypeNotAllowed {
            mime: mime.to_owned(),
        });
    }
    let probed = pipeline::probe(&staged.head, &config.limits);
    if let Err(e) = probed {
        // A header longer than the kept head (rare: huge metadata) needs the whole file.
        let whole_file_differs = staged.size > staged.head.len() as u64
            && !matches!(e, PipelineError::TooManyPixels { .. });
        if !whole_file_differs {
            return Err(SubmitError::Unreadable(e));
        }
        let bytes = pipeline
            .storage()
            .get(&staged.key)
            .await
            .map_err(SubmitError::Storage)?;
        pipeline::probe(&bytes, &config.limits).map_err(SubmitError::Unreadable)?;
    }
    let job = NewJob {
        id: staged.job_id.clone(),
        source_type: source_type.unwrap_or_default().to_owned(),
        source_id: source_id.unwrap_or_default().to_owned(),
        staging_key: staged.key.clone(),
        original_filename: staged.filename.clone(),
        mime_type: mime.to_owned(),
        file_size: staged.size as i64,
        max_attempts: config.worker.max_attempts,
    };
    pipeline
        .jobs()
        .insert(job, now_ms())
        .await
        .map_err(SubmitError::Queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ids_follow_the_contract_pattern() {
        for ok in ["a", "user-abc123", "A.b_c-d", &"x".repeat(128)] {
            assert!(is_valid_source_id(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "ü", &"x".repeat(129), "../x"] {
            assert!(!is_valid_source_id(bad), "{bad}");
        }
    }
}
