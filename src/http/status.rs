//! `GET {prefix}/status/{jobId}`: where a job is, with the HTTP status the contract gives it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::auth::Credential;
use super::media::media_json;
use super::{ApiError, AppState};
use crate::ids::JobId;
use crate::intake::tokens::TokenError;
use crate::queue::{JobErrorCode, JobReport, JobStatus};

/// 202 while PENDING/PROCESSING, 200 COMPLETE with `media`, 400 REJECTED, 500 FAILED (with its
/// `code` and safe `error` sentence), 404 unknown. With `protect_status`, an upload token
/// reads only the jobs it created (403 `FORBIDDEN` for others).
pub async fn status(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    credential: Option<Extension<Credential>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let JobReport { job, media } = state
        .catalog
        .get_status(&JobId::from_string(job_id))
        .await?
        .ok_or(ApiError::JobNotFound)?;
    if let Some(Extension(Credential::Token(grant))) = &credential
        && job.token_id.as_ref() != Some(&grant.id)
    {
        return Err(ApiError::Token(TokenError::OtherJob));
    }
    let status = job.status.as_str();
    let (code, body) = match job.status {
        JobStatus::Pending | JobStatus::Processing => (
            StatusCode::ACCEPTED,
            json!({ "jobId": job.id, "status": status }),
        ),
        JobStatus::Complete => (
            StatusCode::OK,
            json!({
                "jobId": job.id,
                "status": status,
                "media": media.map(|m| media_json(&state, &m)),
            }),
        ),
        JobStatus::Rejected => (
            StatusCode::BAD_REQUEST,
            json!({
                "jobId": job.id,
                "status": status,
                "reason": "Content moderation failed",
                "moderationDetails": job.moderation_details,
            }),
        ),
        JobStatus::Failed => {
            // Every FAILED row has a code (migration 0002 gave old rows INTERNAL); the fallback
            // only keeps the body whole.
            let code = job.error_code.unwrap_or(JobErrorCode::Internal);
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({
                    "jobId": job.id,
                    "status": status,
                    "error": job.error.unwrap_or_else(|| code.sentence().to_owned()),
                    "code": code.as_str(),
                    "attempts": job.attempts,
                }),
            )
        }
    };
    Ok((code, Json(body)))
}
