//! Serving the router on the open internet: the accept loop with the bounds `axum::serve` lacks.
//!
//! Hyper gives the header read timeout (on HTTP/1 it also closes a keep-alive connection that
//! sends no next request) and the HTTP/2 stream cap. Written here is what it does not give: a cap
//! on open connections (past it the loop stops accepting and the kernel's backlog holds the
//! rest), an idle watchdog on every connection (no byte in either direction for `idle_timeout`
//! closes it, whatever the protocol), and a graceful shutdown that waits a bounded time.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::ServerConfig;

/// Most bytes one HTTP/1 connection buffers before the handler reads them.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets open
/// connections finish for at most `limits.shutdown_grace`. Handlers see the peer's address as
/// [`ConnectInfo<SocketAddr>`].
///
/// # Errors
/// When the file-descriptor limit cannot hold `max_connections` (see [`reserve_descriptors`]);
/// afterwards only when the listener itself fails: a failing connection is logged and dropped.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    reserve_descriptors(limits.max_connections)?;
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // The read buffer (hyper's default grows to 400 KiB): what a stalled upload pins
        // besides its head and write buffer. Also the longest request head.
        .max_buf_size(READ_BUFFER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams)
        .max_header_list_size(64 * 1024);
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (io, activity) = Watched::new(stream);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(
            builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned(),
        );
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                }
                () = activity.idle_for(idle_timeout) => {
                    tracing::debug!(%peer, "closed an idle connection");
                }
            }
        });
    }

    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?limits.shutdown_grace,
            "connections still open after the shutdown grace; closing them"
        );
    }
    Ok(())
}

/// Descriptors kept for everything but client connections: database pool, storage, staging
/// files, logs.
const OTHER_DESCRIPTORS: u64 = 256;

/// Raises the soft file-descriptor limit as far as the hard limit allows and checks that
/// `max_connections` fit under it, so a connection flood meets the cap, not `EMFILE` (which
/// would also starve the database pool and storage of descriptors).
///
/// # Errors
/// `InvalidInput` naming both figures when they do not fit.
pub fn reserve_descriptors(max_connections: usize) -> io::Result<u64> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)?;
    let needed = max_connections as u64 + OTHER_DESCRIPTORS;
    if limit < needed {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the file-descriptor limit is {limit}, and max_connections = {max_connections} \
                 needs {needed}: raise the limit (ulimit -n, LimitNOFILE=) or lower max_connections"
            ),
        ));
    }
    Ok(limit)
}

/// An accept error. A peer that left before we accepted is nothing; running out of file
/// descriptors is logged and waited out, so the loop neither spins nor stops serving.
async fn accept_failed(error: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A socket that records when a byte last went in or out.
struct Watched {
    stream: TcpStream,
    activity: Activity,
}

/// When a connection's socket was last used, shared with its watchdog.
#[derive(Clone)]
struct Activity {
    since: Instant,
    /// Milliseconds after `since`.
    last: Arc<AtomicU64>,
}

impl Watched {
    fn new(stream: TcpStream) -> (Watched, Activity) {
        let activity = Activity {
            since: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        };
        let watched = Watched {
            stream,
            activity: activity.clone(),
        };
        (watched, activity)
    }
}

impl Activity {
    fn touch(&self) {
        let elapsed = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(elapsed, Ordering::Relaxed);
    }

    /// Completes once nothing has moved for `limit`; sleeps at most once per `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = self.since + last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
