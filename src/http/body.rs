//! Request bodies that must keep moving: a body that sends nothing for `idle` or falls behind a
//! minimum average rate is cut off, so a slow client cannot hold an upload's memory and staging
//! place for as long as it likes.
//!
//! tower-http's `RequestBodyTimeout` gives the idle part only; the rate (a total time that grows
//! with the bytes received) is what it lacks, so both live in this one small wrapper.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::config::ServerConfig;

/// How fast a request body must arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPace {
    /// Longest wait for the next piece of the body.
    pub idle: Duration,
    /// Bytes per second the body must average, after `grace`.
    pub min_bytes_per_sec: u64,
    /// Time every body gets before the rate applies.
    pub grace: Duration,
}

impl BodyPace {
    /// The upload pace `server` asks for.
    pub fn for_uploads(server: &ServerConfig) -> BodyPace {
        BodyPace {
            idle: server.upload_idle_timeout,
            min_bytes_per_sec: server.upload_min_bytes_per_sec,
            grace: server.upload_grace,
        }
    }
}

/// Why a body was cut off; found in the source chain of the error a handler sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyTimedOut {
    /// Nothing arrived for `idle`.
    Idle,
    /// Less arrived than the minimum rate asks for.
    TooSlow,
}

impl fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyTimedOut::Idle => "the request body stopped arriving",
            BodyTimedOut::TooSlow => "the request body arrived too slowly",
        })
    }
}

impl StdError for BodyTimedOut {}

impl BodyTimedOut {
    /// The cut-off behind `error`, if that is what it is.
    pub fn in_chain(error: &(dyn StdError + 'static)) -> Option<BodyTimedOut> {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(timed_out) = error.downcast_ref::<BodyTimedOut>() {
                return Some(*timed_out);
            }
            next = error.source();
        }
        None
    }
}

/// Wraps the request's body in `pace`.
pub fn paced(pace: BodyPace, request: Request) -> Request {
    request.map(|body| Body::new(Paced::new(body, pace)))
}

/// A body held to a [`BodyPace`].
struct Paced {
    inner: Body,
    pace: BodyPace,
    started: Instant,
    received: u64,
    /// Fires at the earlier of the idle and the rate deadline.
    timer: Pin<Box<Sleep>>,
}

impl Paced {
    fn new(inner: Body, pace: BodyPace) -> Paced {
        let started = Instant::now();
        let mut paced = Paced {
            inner,
            pace,
            started,
            received: 0,
            timer: Box::pin(tokio::time::sleep_until(started)),
        };
        paced.rearm();
        paced
    }

    /// The rate deadline: the grace plus the time `received` bytes may take at the minimum rate.
    fn rate_deadline(&self) -> Instant {
        let allowed = self
            .received
            .checked_div(self.pace.min_bytes_per_sec)
            .unwrap_or(u64::MAX / 2);
        self.started + self.pace.grace + Duration::from_secs(allowed.min(u64::MAX / 2))
    }

    fn rearm(&mut self) {
        let deadline = (Instant::now() + self.pace.idle).min(self.rate_deadline());
        self.timer.as_mut().reset(deadline);
    }

    fn cause(&self) -> BodyTimedOut {
        if Instant::now() >= self.rate_deadline() {
            BodyTimedOut::TooSlow
        } else {
            BodyTimedOut::Idle
        }
    }
}

impl http_body::Body for Paced {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                    self.rearm();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(self.cause())))),
                Poll::Pending => Poll::Pending,
            },
            done => done,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use http_body_util::BodyExt;

    fn pace() -> BodyPace {
        BodyPace {
            idle: Duration::from_secs(5),
            min_bytes_per_sec: 1000,
            grace: Duration::from_secs(2),
        }
    }

    /// A body that sends `chunk` every `every`, forever.
    fn trickle(chunk: &'static [u8], every: Duration) -> Body {
        let stream = futures::stream::unfold((), move |()| async move {
            tokio::time::sleep(every).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(chunk)), ()))
        });
        Body::from_stream(stream)
    }

    async fn read_until_error(body: Body) -> (u64, BodyTimedOut) {
        let mut stream = body.into_data_stream();
        let mut received = 0;
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(bytes) => received += bytes.len() as u64,
                Err(error) => return (received, BodyTimedOut::in_chain(&error).unwrap()),
            }
        }
        panic!("the trickle never ends");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_is_cut_after_idle() {
        let silent = Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
        let started = Instant::now();
        let body = Body::new(Paced::new(
            silent,
            BodyPace {
                grace: Duration::from_secs(60),
                ..pace()
            },
        ));
        let (received, cause) = read_until_error(body).await;
        assert_eq!((received, cause), (0, BodyTimedOut::Idle));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_under_the_rate_is_cut_when_it_falls_behind() {
        // 10 bytes a second against 1,000: never idle, but behind after the 2 s grace.
        let body = Body::new(Paced::new(
            trickle(b"0123456789", Duration::from_secs(1)),
            pace(),
        ));
        let started = Instant::now();
        let (received, cause) = read_until_error(body).await;
        assert_eq!(cause, BodyTimedOut::TooSlow);
        assert!(received <= 30, "received {received} bytes");
        assert!(started.elapsed() <= Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_rate_is_read_to_the_end() {
        let fast = Body::from_stream(
            trickle(&[7; 2000], Duration::from_secs(1))
                .into_data_stream()
                .take(20),
        );
        let body = Body::new(Paced::new(fast, pace()));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 40_000);
    }
}
