//! The HTTP API. Routes (prefix `route_prefix`, default `/image-pipeline`):
//!
//! | method | path | handler |
//! |---|---|---|
//! | POST | `{prefix}/upload` | [`upload::upload`] |
//! | GET | `{prefix}/status/{jobId}[?wait=N]` | [`status::status`] |
//! | GET | `{prefix}/status/{jobId}/events` (server-sent events) | [`events::events`] |
//! | GET | `{prefix}/media?sourceType=&sourceId=[&limit=&cursor=]` | [`media::list`] |
//! | GET | `{prefix}/media/{mediaId}` | [`media::get`] |
//! | DELETE | `{prefix}/media/{mediaId}` | [`media::delete`] |
//! | POST | `{prefix}/tokens` (with `[auth]`) | [`tokens::mint`] |
//! | GET | `{prefix}/openapi.json` | [`openapi::router`] |
//! | GET | `/files/{*key}` (local storage only) | [`files::serve`] |
//! | GET | `/healthz`, `/readyz`, `/metrics` | [`ops`] |
//! | GET | `/`, `/demo/*` (the demo page) | [`demo::demo_router`] |
//!
//! With `[auth]`, each route but the status and events (unless `protect_status`) and `/files`
//! needs an API key with its scope ([`auth`]); an upload token stands in for one on the upload,
//! status and events routes.
//!
//! Handlers see an [`AppState`]: the intake (uploads) and the catalogue (status, media), never
//! the whole service; `/files` sees only the storage.
//!
//! Every route is observed ([`observe`]): a request id, a span, its count and latency.
//!
//! Routers (API.md §4b): [`api_router`], [`files_router`] and [`ops::ops_router`] each stand
//! alone, with no fallback, so a host app can mount, protect or leave out each; [`app`] merges them with the
//! JSON 404 fallback for `serve`.

pub mod auth;
pub mod body;
pub mod client;
pub mod cors;
pub mod demo;
pub mod drain;
pub mod error;
pub mod events;
pub mod files;
pub mod hook;
pub mod media;
pub mod observe;
pub mod openapi;
pub mod ops;
pub mod serve;
pub mod status;
pub mod tokens;
pub mod upload;

use std::any::Any;
use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};

pub use body::BodyPace;
pub use error::ApiError;
use error::ServerErrorDetail;

use tower_http::catch_panic::CatchPanicLayer;

use crate::catalog::Catalog;
use crate::config::{AuthConfig, FilesAccess, Scope};
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::storage::Storage;

/// Room for the form's other fields and part headers on top of `max_file_size`.
const FORM_OVERHEAD: u64 = 64 * 1024;

/// What the API's handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Accepts uploads.
    pub intake: Intake,
    /// Reads jobs and media, deletes media.
    pub catalog: Catalog,
    /// Prefix of the API routes, e.g. `/image-pipeline`.
    pub route_prefix: Arc<str>,
    /// How fast an upload's body must arrive.
    pub body_pace: BodyPace,
    /// Peers whose `X-Forwarded-For` names the client (`[fairness] trusted_proxies`).
    pub trusted_proxies: Arc<[IpAddr]>,
    /// API keys; `None` when the API is open.
    pub auth: Option<Arc<AuthConfig>>,
    /// The host app's check of each upload's source, if any.
    pub upload_hook: Option<Arc<dyn hook::UploadHook>>,
    /// Where requests and accepted bytes are counted.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// Whether `token`, `sourceType` and `sourceId` must come before the file: with access
    /// control or a hook, the upload is judged before its bytes are staged.
    pub fn fields_first(&self) -> bool {
        self.auth.is_some() || self.upload_hook.is_some()
    }
}

/// What `serve` answers: `routers` merged, and a JSON 404 `NOT_FOUND` for any other path.
pub fn app(routers: impl IntoIterator<Item = Router>) -> Router {
    routers
        .into_iter()
        .fold(Router::new(), Router::merge)
        .fallback(|| async { ApiError::NotFound })
}

/// `router` with a panic guard: a handler that panics answers 500 `INTERNAL` (the panic is
/// logged), and the connection and the process carry on.
pub fn catch_panics(router: Router) -> Router {
    router.layer(CatchPanicLayer::custom(panicked))
}

/// The API routes under the prefix, with the panic guard and the logging of 5xx answers; no
/// fallback.
pub fn api_router(state: AppState) -> Router {
    let prefix = state.route_prefix.clone();
    let body_limit = (state.intake.rules().max_file_size + FORM_OVERHEAD) as usize;
    let pace = state.body_pace;
    let auth = state.auth.clone();
    let intake = state.intake.clone();
    let guard = |route: MethodRouter<AppState>,
                 scopes: &'static [Scope],
                 tokens: Option<auth::TokenUse>| {
        match auth::Required::any_of(auth.as_deref(), scopes) {
            Some(required) => {
                let required = match tokens {
                    Some(usage) => required.or_token(intake.clone(), usage),
                    None => required,
                };
                route.layer(middleware::from_fn_with_state(required, auth::check))
            }
            None => route,
        }
    };
    let protect_status = auth.as_ref().is_some_and(|a| a.protect_status);
    let upload = post(upload::upload)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::map_request(move |request| async move {
            body::paced(pace, request)
        }));
    let status_route = |route: MethodRouter<AppState>| match protect_status {
        true => guard(route, &[Scope::Read], Some(auth::TokenUse::Status)),
        false => route,
    };
    // Outermost, so that a refusal of the guard is drained too.
    let drained = middleware::from_fn_with_state(body_limit as u64, drain::drain_refused);
    let mut router = Router::new()
        .route(
            &format!("{prefix}/upload"),
            guard(upload, &[Scope::Upload], Some(auth::TokenUse::Upload)).layer(drained),
        )
        .route(
            &format!("{prefix}/status/{{job_id}}"),
            status_route(get(status::status)),
        )
        .route(
            &format!("{prefix}/status/{{job_id}}/events"),
            status_route(get(events::events)),
        )
        .route(
            &format!("{prefix}/media"),
            guard(get(media::list), &[Scope::Read], None),
        )
        .route(
            &format!("{prefix}/media/{{media_id}}"),
            guard(get(media::get), &[Scope::Read], None).merge(guard(
                delete(media::delete),
                &[Scope::Delete],
                None,
            )),
        );
    if auth.is_some() {
        router = router.route(
            &format!("{prefix}/tokens"),
            guard(post(tokens::mint), &[Scope::Upload, Scope::Admin], None),
        );
    }
    let observed = middleware::from_fn_with_state(Arc::clone(&state.metrics), observe::observe);
    let router = router.route_layer(observed).with_state(state);
    catch_panics(router.layer(axum::middleware::map_response(log_server_errors)))
}

/// `/files/{*key}`: stored media and originals, served from local storage; no fallback. With
/// `[auth] files = "key"` it needs a `read` key; signed links are checked by the handler.
pub fn files_router(storage: Storage, auth: Option<&AuthConfig>, metrics: Arc<Metrics>) -> Router {
    let mut route = get(files::serve);
    if let Some(auth) = auth.filter(|a| a.files == FilesAccess::Key) {
        let required = auth::Required::any_of(Some(auth), &[Scope::Read]);
        if let Some(required) = required {
            route = route.layer(middleware::from_fn_with_state(required, auth::check));
        }
    }
    let router = Router::new()
        .route("/files/{*key}", route)
        .route_layer(middleware::from_fn_with_state(metrics, observe::observe))
        .with_state(storage);
    catch_panics(router)
}

/// A handler panicked: 500 `INTERNAL`, the panic logged, the process and connection alive.
fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a request handler panicked");
    ApiError::Internal.into_response()
}

/// Logs each 5xx answer once, with the detail the client is not shown.
async fn log_server_errors(response: Response) -> Response {
    if let Some(ServerErrorDetail(detail)) = response.extensions().get::<ServerErrorDetail>() {
        tracing::error!(status = response.status().as_u16(), %detail, "request failed");
    }
    response
}
