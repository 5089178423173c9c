//! `GET {prefix}/status/{jobId}/events`: the job's status as server-sent events, for the
//! browser's `EventSource`. One `status` event with the current body at once, one per change
//! of status, and the stream ends after the final one (COMPLETE, REJECTED or FAILED): call
//! `close()` on it then, or the browser connects again and is told the final status again.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use utoipa::ToSchema;

use super::auth::Credential;
use super::error::ErrorBody;
use super::status::{readable_report, status_body};
use super::{ApiError, AppState};
use crate::catalog::Watch;
use crate::ids::JobId;
use crate::queue::JobReport;

/// One server-sent event of the stream, for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the stream; never built.
pub struct StatusEvent {
    /// Always `status`.
    #[schema(example = "status")]
    event: String,
    /// The status body, as JSON text: what the status route answers (`JobPending`,
    /// `JobComplete`, `JobRejected` or `JobFailed`).
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// The longest a stream stays open while its job runs: then it ends, and `EventSource`
/// connects again and carries on from the current status.
pub const MAX_STREAM: Duration = Duration::from_secs(300);

/// The stream of a job's status bodies; 404 `JOB_NOT_FOUND` (and 401/403 with
/// `protect_status`) are answered before it starts.
#[utoipa::path(
    get,
    path = "/image-pipeline/status/{jobId}/events",
    tag = "jobs",
    operation_id = "statusEvents",
    params(
        ("jobId" = String, Path, description = "The upload's job id"),
        ("token" = Option<String>, Query, description = "The job's upload token (with `protect_status`), for EventSource"),
    ),
    responses(
        (status = 200, description = "`status` events, each a status body (as the status route's), ending after the final one",
            content_type = "text/event-stream", body = StatusEvent),
        (status = 401, description = "UNAUTHORIZED (with `protect_status`)", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
        (status = 404, description = "JOB_NOT_FOUND", body = ErrorBody),
        (status = 503, description = "QUEUE_UNAVAILABLE (with Retry-After)", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    credential: Option<Extension<Credential>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = JobId::from_string(job_id);
    // Watching before the first read: no change after it is missed.
    let watch = state.catalog.watch(&id);
    let report = readable_report(&state, &id, credential.as_deref()).await?;
    let follow = Follow {
        state,
        watch,
        last: report,
        sent: false,
        until: tokio::time::Instant::now() + MAX_STREAM,
    };
    let stream = futures::stream::unfold(follow, |mut follow| async move {
        if follow.sent {
            if follow.last.job.status.is_terminal() {
                return None;
            }
            let next = follow.watch.next_after(&follow.last);
            let next = tokio::time::timeout_at(follow.until, next).await.ok()??;
            follow.last = JobReport::clone(&next);
        }
        follow.sent = true;
        let (_, body) = status_body(&follow.state, &follow.last);
        let event = Event::default()
            .event("status")
            .data(serde_json::to_string(&body).unwrap_or_default());
        Some((Ok(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Where one stream stands.
struct Follow {
    state: AppState,
    watch: Watch,
    /// The last report read, sent once `sent`.
    last: JobReport,
    sent: bool,
    until: tokio::time::Instant,
}
