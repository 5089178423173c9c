//! What every answered request leaves behind: an id (`X-Request-Id`, the client's when it is
//! well-formed, else a new one; returned in the response), a span carrying it so every log
//! line of the request names it (in the caller's trace, when it sent a `traceparent`), and its
//! count and latency in the metrics, by route pattern.
//!
//! Put on each router with `route_layer`, after routing, so the route is the matched pattern
//! (`/image-pipeline/status/{job_id}`), never a raw path that would grow the metrics without
//! bound.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::traces;

/// The request id header, read and written.
pub const REQUEST_ID: &str = "x-request-id";

/// The id of the request being answered, in its extensions: the upload route records it on
/// the job, and the worker's span carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The W3C `traceparent` of the request's span, in its extensions when the request is traced
/// (the `otel` feature): the upload route stores it on the job for the worker to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(pub String);

/// Whether a client's request id can be taken as it is: 1 to 128 characters of letters,
/// digits and `-_.:`, so it is safe in logs and headers.
fn well_formed(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The middleware: assigns the id, runs the request in its span, counts it.
pub async fn observe(
    State(metrics): State<Arc<Metrics>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| well_formed(id))
        .map_or_else(cuid2::create_id, str::to_owned);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", id = %id, %method, %route);
    traces::join_caller(&span, request.headers());
    if let Some(parent) = traces::parent_of(&span) {
        request.extensions_mut().insert(TraceParent(parent));
    }
    let mut response = next.run(request).instrument(span).await;
    metrics.request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_ids_are_taken() {
        for ok in ["a", "req-1", "4bf92f3577b34da6a3ce929d0e0e4736", "a.b_c:d"] {
            assert!(well_formed(ok), "{ok}");
        }
        for bad in ["", "a b", "a\nb", "<script>", &"x".repeat(129), "ü"] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
