//! `GET {prefix}/status/{jobId}[?wait=N]`: where a job is, with the HTTP status the contract
//! gives it; with `wait`, the answer comes the moment the job ends, or after N seconds.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use utoipa::ToSchema;

use super::auth::Credential;
use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::catalog::views::{
    JobComplete, JobFailed, JobPending, JobRejected, StatusView, status_view,
};
use crate::ids::JobId;
use crate::intake::tokens::TokenError;
use crate::queue::{JobReport, JobStatus};

/// The longest `?wait`; longer ones are cut to it (below common proxies' 60 s idle timeouts).
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// `Retry-After` of a 202 answer: when a client polling without `wait` should ask again.
pub const RETRY_AFTER_SECS: u64 = 1;

/// 202 while PENDING/PROCESSING (with `Retry-After`), 200 COMPLETE with `media`, 400
/// REJECTED, 500 FAILED (with its `code` and safe `error` sentence), 404 unknown. `wait=N`
/// (seconds, at most [`MAX_WAIT`]) holds a 202 until the job ends or N runs out; a `wait` that
/// is not a number of seconds is 400 `INVALID_WAIT`. With `protect_status`, an upload token
/// reads only the jobs it created (403 `FORBIDDEN` for others).
#[utoipa::path(
    get,
    path = "/image-pipeline/status/{jobId}",
    tag = "jobs",
    operation_id = "status",
    params(
        ("jobId" = String, Path, description = "The upload's job id"),
        ("wait" = Option<f64>, Query, minimum = 0,
            description = "Seconds (at most 30) to hold a 202 until the job ends"),
    ),
    responses(
        (status = 200, description = "COMPLETE, with its media", body = JobComplete),
        (status = 202, description = "PENDING or PROCESSING", body = JobPending,
            headers(("Retry-After" = u64, description = "When to ask again, in seconds"))),
        (status = 400, description = "REJECTED by moderation; or INVALID_WAIT", body = RejectedOrRefused),
        (status = 401, description = "UNAUTHORIZED (with `protect_status`)", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: a key without the read scope, or another job's token", body = ErrorBody),
        (status = 404, description = "JOB_NOT_FOUND", body = ErrorBody),
        (status = 500, description = "FAILED, with its code", body = JobFailed),
        (status = 503, description = "QUEUE_UNAVAILABLE (with Retry-After)", body = ErrorBody),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    credential: Option<Extension<Credential>>,
) -> Result<Response, ApiError> {
    let wait = query.get("wait").map(|w| parse_wait(w)).transpose()?;
    let id = JobId::from_string(job_id);
    let mut report = readable_report(&state, &id, credential.as_deref()).await?;
    if let Some(wait) = wait.filter(|w| !w.is_zero())
        && !report.job.status.is_terminal()
    {
        let deadline = tokio::time::Instant::now() + wait;
        report = state
            .catalog
            .wait_until_ended(&id, deadline)
            .await?
            .ok_or(ApiError::JobNotFound)?;
    }
    Ok(answer(&state, &report))
}

/// The job's report, when it exists and the credential may read it.
pub(super) async fn readable_report(
    state: &AppState,
    id: &JobId,
    credential: Option<&Credential>,
) -> Result<JobReport, ApiError> {
    let report = state
        .catalog
        .get_status(id)
        .await?
        .ok_or(ApiError::JobNotFound)?;
    if let Some(Credential::Token(grant)) = credential
        && report.job.token_id.as_ref() != Some(&grant.id)
    {
        return Err(ApiError::Token(TokenError::OtherJob));
    }
    Ok(report)
}

/// A 400 of the status route: the job was REJECTED, or the request was wrong.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Describes answers; never built.
pub enum RejectedOrRefused {
    /// The job was REJECTED by moderation.
    Rejected(JobRejected),
    /// INVALID_WAIT.
    Refused(ErrorBody),
}

/// `wait` in seconds (fractions allowed): 0 to [`MAX_WAIT`], larger cut to it.
fn parse_wait(text: &str) -> Result<Duration, ApiError> {
    let seconds: f64 = text.trim().parse().map_err(|_| ApiError::InvalidWait)?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(ApiError::InvalidWait);
    }
    Ok(Duration::from_secs_f64(seconds.min(MAX_WAIT.as_secs_f64())))
}

/// The status answer of `report`: its HTTP status and body, and `Retry-After` on a 202.
fn answer(state: &AppState, report: &JobReport) -> Response {
    let (code, body) = status_body(state, report);
    let mut response = (code, Json(body)).into_response();
    if code == StatusCode::ACCEPTED {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}

/// The HTTP status and JSON body the contract gives a job's report: what the status route
/// answers and what every server-sent event carries.
pub(super) fn status_body(state: &AppState, report: &JobReport) -> (StatusCode, StatusView) {
    let code = match report.job.status {
        JobStatus::Pending | JobStatus::Processing => StatusCode::ACCEPTED,
        JobStatus::Complete => StatusCode::OK,
        JobStatus::Rejected => StatusCode::BAD_REQUEST,
        JobStatus::Failed => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, status_view(&state.catalog, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_seconds_cut_to_the_maximum() {
        assert_eq!(parse_wait("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_wait("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_wait("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_wait("3600").unwrap(), MAX_WAIT);
        for bad in ["", "soon", "-1", "NaN", "inf", "1e999"] {
            assert!(
                matches!(parse_wait(bad), Err(ApiError::InvalidWait)),
                "{bad}"
            );
        }
    }
}
