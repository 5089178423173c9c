//! The JSON the contract gives a job and a media, with their public URLs as of now: what the
//! status and media routes answer, server-sent events carry, and webhooks send.
//!
//! Each body is a type here, serialised as it is and described by the same type in the OpenAPI
//! document (`crate::http::openapi`), so the document cannot drift from the answers.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::Catalog;
use crate::queue::{JobErrorCode, JobReport, JobStatus, Media};

/// The media object: ids, absolute URLs, displayed size, ratio, blurhash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Media)]
pub struct MediaView {
    /// `med_` and a random id.
    #[schema(example = "med_tz4a98xxat96iws9zmbrgj3a")]
    pub id: String,
    /// The upload's `sourceType`.
    #[schema(example = "gallery")]
    pub source_type: String,
    /// The upload's `sourceId`.
    #[schema(example = "user-42")]
    pub source_id: String,
    /// Variant name → absolute URL of its WebP.
    pub urls: BTreeMap<String, String>,
    /// Variant name → its pixel size.
    pub variants: BTreeMap<String, VariantSize>,
    /// Absolute URL of the original (metadata stripped), or null when the source type keeps none.
    #[schema(required = true)]
    pub original_url: Option<String>,
    /// Displayed width, after the EXIF orientation.
    #[schema(example = 4032)]
    pub width: u32,
    /// Displayed height, after the EXIF orientation.
    #[schema(example = 3024)]
    pub height: u32,
    /// `W:H` reduced by their gcd.
    #[schema(example = "4:3")]
    pub aspect_ratio: String,
    /// A 4×3-component blurhash of the oriented image.
    #[schema(example = "LEHV6nWB2yk8pyo0adR*.7kCMdnj")]
    pub blurhash: String,
    /// The format sniffed from the upload's bytes, in lower case.
    #[schema(example = "jpeg")]
    pub format: String,
    /// When it was recorded (RFC 3339).
    #[schema(required = true, example = "2026-12-07T12:00:00+00:00")]
    pub created_at: Option<String>,
}

/// A variant's pixel size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VariantSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A page of a source's media, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaPage {
    /// The page's media.
    pub media: Vec<MediaView>,
    /// The `cursor` of the next page, or null on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A job's status body: `jobId` and `status`, with `media` when COMPLETE, the moderation
/// details when REJECTED, the safe `error`, `code` and `attempts` when FAILED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StatusView {
    /// PENDING or PROCESSING (HTTP 202).
    Pending(JobPending),
    /// COMPLETE (HTTP 200).
    Complete(JobComplete),
    /// REJECTED by moderation (HTTP 400).
    Rejected(JobRejected),
    /// FAILED (HTTP 500).
    Failed(JobFailed),
}

/// A job still to finish (HTTP 202, with `Retry-After`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobPending {
    /// The job's id.
    #[schema(example = "tz4a98xxat96iws9zmbrgj3a")]
    pub job_id: String,
    /// Where it is.
    pub status: PendingStatus,
}

/// The states of a job still to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PendingStatus {
    /// Waiting for a worker (or for storage or the database to come back).
    Pending,
    /// A worker has it.
    Processing,
}

/// A finished job and its media (HTTP 200).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobComplete {
    /// The job's id.
    pub job_id: String,
    /// Always `COMPLETE`.
    pub status: CompleteStatus,
    /// What it made (null only if the media was deleted since).
    #[schema(required = true)]
    pub media: Option<MediaView>,
}

/// The one value of [`JobComplete::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum CompleteStatus {
    /// The job made its media.
    #[serde(rename = "COMPLETE")]
    Complete,
}

/// A job whose image moderation refused (HTTP 400).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRejected {
    /// The job's id.
    pub job_id: String,
    /// Always `REJECTED`.
    pub status: RejectedStatus,
    /// Always `Content moderation failed`.
    #[schema(example = "Content moderation failed")]
    pub reason: String,
    /// The moderator's verdict: `flags`, `confidence` and what else it gives.
    #[schema(required = true, value_type = Option<HashMap<String, serde_json::Value>>)]
    pub moderation_details: Option<Value>,
}

/// The one value of [`JobRejected::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum RejectedStatus {
    /// Moderation refused the image.
    #[serde(rename = "REJECTED")]
    Rejected,
}

/// A job that ended without media (HTTP 500).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobFailed {
    /// The job's id.
    pub job_id: String,
    /// Always `FAILED`.
    pub status: FailedStatus,
    /// Why, in words, without internals.
    #[schema(example = "The file is not a readable image")]
    pub error: String,
    /// Why, as a stable code.
    pub code: JobErrorCode,
    /// The attempts made.
    pub attempts: u32,
}

/// The one value of [`JobFailed::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum FailedStatus {
    /// The job ended without media.
    #[serde(rename = "FAILED")]
    Failed,
}

impl StatusView {
    /// Whether the job has ended (COMPLETE, REJECTED or FAILED).
    pub fn is_final(&self) -> bool {
        !matches!(self, StatusView::Pending(_))
    }
}

/// A job's status body, as the status route answers it.
pub fn status_view(catalog: &Catalog, report: &JobReport) -> StatusView {
    let job = &report.job;
    let job_id = job.id.to_string();
    match job.status {
        JobStatus::Pending => StatusView::Pending(JobPending {
            job_id,
            status: PendingStatus::Pending,
        }),
        JobStatus::Processing => StatusView::Pending(JobPending {
            job_id,
            status: PendingStatus::Processing,
        }),
        JobStatus::Complete => StatusView::Complete(JobComplete {
            job_id,
            status: CompleteStatus::Complete,
            media: report.media.as_ref().map(|m| media_view(catalog, m)),
        }),
        JobStatus::Rejected => StatusView::Rejected(JobRejected {
            job_id,
            status: RejectedStatus::Rejected,
            reason: "Content moderation failed".to_owned(),
            moderation_details: job.moderation_details.clone(),
        }),
        JobStatus::Failed => {
            // Every FAILED row has a code (migration 0002 gave old rows INTERNAL); the fallback
            // only keeps the body whole.
            let code = job.error_code.unwrap_or(JobErrorCode::Internal);
            StatusView::Failed(JobFailed {
                job_id,
                status: FailedStatus::Failed,
                error: job
                    .error
                    .clone()
                    .unwrap_or_else(|| code.sentence().to_owned()),
                code,
                attempts: job.attempts,
            })
        }
    }
}

/// The media object of the contract.
pub fn media_view(catalog: &Catalog, media: &Media) -> MediaView {
    MediaView {
        id: media.id.to_string(),
        source_type: media.source_type.clone(),
        source_id: media.source_id.clone(),
        urls: media
            .variants
            .iter()
            .map(|(name, v)| (name.clone(), catalog.public_url(&v.key)))
            .collect(),
        variants: media
            .variants
            .iter()
            .map(|(name, v)| {
                let size = VariantSize {
                    width: v.width,
                    height: v.height,
                };
                (name.clone(), size)
            })
            .collect(),
        original_url: media.original_key.as_deref().map(|k| catalog.public_url(k)),
        width: media.width,
        height: media.height,
        aspect_ratio: media.aspect_ratio.clone(),
        blurhash: media.blurhash.clone(),
        format: media.format.clone(),
        created_at: Utc
            .timestamp_millis_opt(media.created_at)
            .single()
            .map(|t| t.to_rfc3339()),
    }
}
