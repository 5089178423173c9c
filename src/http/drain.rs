//! A refusal answered before the upload's body was read (no key, a bad `Idempotency-Key`, too
//! many pending jobs) would otherwise close the connection under a client still sending it,
//! and many clients (Node's `fetch` among them) then report a broken pipe instead of the
//! answer. So the unread rest of a refused body is read and dropped first, up to the route's
//! size limit and for a bounded time, and the client reads its refusal with its code. A body
//! declared larger than the limit is not read: its connection is closed as before.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use http_body::{Frame, SizeHint};

/// The longest a refused body is read for.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads and drops the unread rest of a refused request's body, at most `limit` bytes, within
/// [`DRAIN_TIME`]; then answers.
pub async fn drain_refused(State(limit): State<u64>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let slot = Arc::new(Mutex::new(None));
    let returned = Arc::clone(&slot);
    let request = request.map(|body| {
        Body::new(Returning {
            inner: body,
            slot: returned,
        })
    });
    let response = next.run(request).await;
    let unread = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(body) = unread
        && !response.status().is_success()
        && declared.is_none_or(|len| len <= limit)
    {
        let _ = tokio::time::timeout(DRAIN_TIME, read_up_to(body, limit)).await;
    }
    response
}

/// Reads `body` until it ends, fails, or `limit` bytes have come.
async fn read_up_to(body: Body, limit: u64) {
    let mut chunks = body.into_data_stream();
    let mut read = 0u64;
    while read <= limit {
        match chunks.next().await {
            Some(Ok(chunk)) => read += chunk.len() as u64,
            _ => return,
        }
    }
}

/// A request body that, dropped before its end, puts itself back in `slot`.
struct Returning {
    inner: Body,
    slot: Arc<Mutex<Option<Body>>>,
}

impl http_body::Body for Returning {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if !http_body::Body::is_end_stream(&self.inner) {
            let rest = std::mem::replace(&mut self.inner, Body::empty());
            *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(rest);
        }
    }
}
