//! The HTTP API. Routes (prefix `route_prefix`, default `/image-pipeline`):
//!
//! | method | path | handler |
//! |---|---|---|
//! | POST | `{prefix}/upload` | [`upload::upload`] |
//! | GET | `{prefix}/status/{jobId}` | [`status::status`] |
//! | GET | `{prefix}/media?sourceType=&sourceId=` | [`media::list`] |
//! | GET | `{prefix}/media/{mediaId}` | [`media::get`] |
//! | DELETE | `{prefix}/media/{mediaId}` | [`media::delete`] |
//! | GET | `/files/{*key}` (local storage only) | [`files::serve`] |

pub mod error;
pub mod files;
pub mod media;
pub mod status;
pub mod upload;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::routing::{get, post};

pub use error::ApiError;
use error::ServerErrorDetail;

use crate::ImagePipeline;

/// Room for the form's other fields and part headers on top of `max_file_size`.
const FORM_OVERHEAD: u64 = 64 * 1024;

/// Every route, with the pipeline as state.
pub fn router(pipeline: ImagePipeline) -> Router {
    let prefix = pipeline.config().route_prefix.clone();
    let body_limit = (pipeline.config().max_file_size + FORM_OVERHEAD) as usize;
    let mut router = Router::new()
        .route(
            &format!("{prefix}/upload"),
            post(upload::upload).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route(&format!("{prefix}/status/{{job_id}}"), get(status::status))
        .route(&format!("{prefix}/media"), get(media::list))
        .route(
            &format!("{prefix}/media/{{media_id}}"),
            get(media::get).delete(media::delete),
        );
    if pipeline.storage().is_local() {
        router = router.route("/files/{*key}", get(files::serve));
    }
    router
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::map_response(log_server_errors))
        .with_state(pipeline)
}

/// Logs each 5xx answer once, with the detail the client is not shown.
async fn log_server_errors(response: Response) -> Response {
    if let Some(ServerErrorDetail(detail)) = response.extensions().get::<ServerErrorDetail>() {
        tracing::error!(status = response.status().as_u16(), %detail, "request failed");
    }
    response
}
