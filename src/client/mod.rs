//! A typed HTTP client of the API (cargo feature `client`), for Rust apps and services that
//! talk to a ximagepipeline server: upload, read a job's status or wait for its end, read,
//! list and delete media. Answers are the server's own body types, so the client and the
//! server cannot disagree on a field.
//!
//! ```no_run
//! # async fn example() -> Result<(), ximagepipeline::client::ClientError> {
//! use std::time::Duration;
//! use ximagepipeline::client::{Client, Upload, UploadBody};
//! use ximagepipeline::catalog::views::StatusView;
//!
//! let client = Client::new("http://127.0.0.1:3000")?;
//! let body = UploadBody::from_path("photo.jpg").await?;
//! let accepted = client
//!     .upload(Upload::new("gallery", "user-42", body).idempotency_key("photo-1"))
//!     .await?;
//! match client.wait(&accepted.job_id, Duration::from_secs(60)).await? {
//!     StatusView::Complete(done) => println!("{:?}", done.media.map(|m| m.urls)),
//!     other => println!("not complete: {other:?}"),
//! }
//! # Ok(()) }
//! ```

mod error;
mod upload;

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;

pub use error::ClientError;
pub use upload::{Accepted, Upload, UploadBody};

use crate::catalog::views::{MediaPage, MediaView, StatusView};
use crate::http::error::ErrorBody;

/// The longest `?wait` the server holds a status request (it cuts longer ones to this).
const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// A client of one server. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The server's base URL, e.g. `http://127.0.0.1:3000`.
    base: Url,
    /// The API's route prefix, e.g. `/image-pipeline`.
    prefix: String,
    /// Sent as `Authorization: Bearer` on every request.
    bearer: Option<String>,
}

/// Which page of a source's media to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// How many (1–500); the server's default when absent (at most 1,000).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:3000`), with the default
    /// prefix `/image-pipeline` and no credential.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] when `base_url` is not an absolute http(s) URL.
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        let base = Url::parse(base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| ClientError::InvalidUrl(base_url.to_owned()))?;
        Ok(Client {
            http: reqwest::Client::new(),
            base,
            prefix: "/image-pipeline".to_owned(),
            bearer: None,
        })
    }

    /// The server's `route_prefix`, when not `/image-pipeline`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: &str) -> Client {
        self.prefix = prefix.trim_end_matches('/').to_owned();
        self
    }

    /// Sends `Authorization: Bearer <credential>`: an API key, or an upload token.
    #[must_use]
    pub fn with_bearer(mut self, credential: &str) -> Client {
        self.bearer = Some(credential.to_owned());
        self
    }

    /// Uses `http` (its timeouts, proxies, TLS settings) instead of a default client.
    #[must_use]
    pub fn with_http_client(mut self, http: reqwest::Client) -> Client {
        self.http = http;
        self
    }

    /// `POST {prefix}/upload`: the job is queued; its status comes later.
    ///
    /// # Errors
    /// [`ClientError::Api`] with the refusal's code (`TYPE_NOT_ALLOWED`, `FILE_TOO_LARGE`, ...),
    /// or [`ClientError::Http`] when the server cannot be reached.
    pub async fn upload(&self, upload: Upload) -> Result<Accepted, ClientError> {
        let request = self.request(Method::POST, &["upload"], &[]);
        let response = upload.send(request).await?;
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        if response.status() != StatusCode::ACCEPTED {
            return Err(refusal(response).await);
        }
        let body: crate::http::upload::UploadAccepted = json(response).await?;
        Ok(Accepted {
            job_id: body.job_id,
            status_url: body.status_url,
            message: body.message,
            replayed,
        })
    }

    /// `GET {prefix}/status/{jobId}`: where the job is now.
    ///
    /// # Errors
    /// [`ClientError::Api`] with `JOB_NOT_FOUND` for an unknown job, or another refusal.
    pub async fn status(&self, job_id: &str) -> Result<StatusView, ClientError> {
        self.status_waiting(job_id, Duration::ZERO).await
    }

    /// The job's status once it has ended (COMPLETE, REJECTED or FAILED), or as it is when
    /// `timeout` runs out (PENDING or PROCESSING: check [`StatusView::is_final`]). Long-polls
    /// with `?wait=`, so the answer comes the moment the job ends, in one request per 30 s.
    ///
    /// # Errors
    /// As [`Client::status`].
    pub async fn wait(&self, job_id: &str, timeout: Duration) -> Result<StatusView, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let status = self.status_waiting(job_id, left.min(LONGEST_WAIT)).await?;
            if status.is_final() || left.is_zero() {
                return Ok(status);
            }
        }
    }

    async fn status_waiting(
        &self,
        job_id: &str,
        wait: Duration,
    ) -> Result<StatusView, ClientError> {
        let seconds = format!("{:.3}", wait.as_secs_f64());
        let request = match wait.is_zero() {
            true => self.request(Method::GET, &["status", job_id], &[]),
            false => self
                .request(Method::GET, &["status", job_id], &[("wait", &seconds)])
                // The server answers by `wait`; past it by this much, something is wrong.
                .timeout(wait + Duration::from_secs(30)),
        };
        let response = request.send().await?;
        match response.status() {
            StatusCode::OK
            | StatusCode::ACCEPTED
            | StatusCode::BAD_REQUEST
            | StatusCode::INTERNAL_SERVER_ERROR => {
                let (status, after) = (response.status(), retry_after(response.headers()));
                let text = response.text().await?;
                serde_json::from_str::<StatusView>(&text)
                    .map_err(|_| from_text(status, after, &text))
            }
            _ => Err(refusal(response).await),
        }
    }

    /// `GET {prefix}/media/{mediaId}`.
    ///
    /// # Errors
    /// [`ClientError::Api`] with `MEDIA_NOT_FOUND` for an unknown media, or another refusal.
    pub async fn media(&self, media_id: &str) -> Result<MediaView, ClientError> {
        let response = self
            .request(Method::GET, &["media", media_id], &[])
            .send()
            .await?;
        ok_json(response).await
    }

    /// `GET {prefix}/media?sourceType=&sourceId=`: one page of a source's media, newest first;
    /// pass its `next_cursor` back in `page.cursor` for the next.
    ///
    /// # Errors
    /// [`ClientError::Api`] with `INVALID_LIMIT` or `INVALID_CURSOR`, or another refusal.
    pub async fn list_media(
        &self,
        source_type: &str,
        source_id: &str,
        page: &Page,
    ) -> Result<MediaPage, ClientError> {
        let limit = page.limit.map(|l| l.to_string());
        let mut query = vec![("sourceType", source_type), ("sourceId", source_id)];
        query.extend(limit.as_deref().map(|l| ("limit", l)));
        query.extend(page.cursor.as_deref().map(|c| ("cursor", c)));
        let response = self.request(Method::GET, &["media"], &query).send().await?;
        ok_json(response).await
    }

    /// `DELETE {prefix}/media/{mediaId}`: every stored object and the row; `false` when there
    /// was no such media.
    ///
    /// # Errors
    /// A refusal other than `MEDIA_NOT_FOUND` (`FORBIDDEN`, `STORAGE_UNAVAILABLE`, ...).
    pub async fn delete_media(&self, media_id: &str) -> Result<bool, ClientError> {
        let response = self
            .request(Method::DELETE, &["media", media_id], &[])
            .send()
            .await?;
        match response.status() {
            StatusCode::NO_CONTENT => Ok(true),
            _ => match refusal(response).await {
                e if e.code() == Some("MEDIA_NOT_FOUND") => Ok(false),
                e => Err(e),
            },
        }
    }

    /// A request to `{base}{prefix}/{segments...}?{query}`, each part escaped, with the
    /// credential.
    fn request(&self, method: Method, segments: &[&str], query: &[(&str, &str)]) -> RequestBuilder {
        let mut url = self.base.clone();
        let prefix: Vec<&str> = self.prefix.split('/').filter(|s| !s.is_empty()).collect();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(prefix).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let request = self.http.request(method, url);
        match &self.bearer {
            Some(credential) => request.header(AUTHORIZATION, format!("Bearer {credential}")),
            None => request,
        }
    }
}

/// A 2xx body as `T`, or the refusal.
async fn ok_json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ClientError> {
    if response.status().is_success() {
        json(response).await
    } else {
        Err(refusal(response).await)
    }
}

/// The body as `T`; a body that is not one is [`ClientError::Unexpected`].
async fn json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ClientError> {
    let (status, after) = (response.status(), retry_after(response.headers()));
    let text = response.text().await?;
    serde_json::from_str(&text).map_err(|_| from_text(status, after, &text))
}

/// The error of a refusal: its `{"error", "code"}` body and `Retry-After`.
async fn refusal(response: reqwest::Response) -> ClientError {
    let (status, after) = (response.status(), retry_after(response.headers()));
    match response.text().await {
        Ok(text) => from_text(status, after, &text),
        Err(e) => ClientError::Http(e),
    }
}

/// A `Retry-After` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs = headers.get(RETRY_AFTER)?.to_str().ok()?.parse().ok()?;
    Some(Duration::from_secs(secs))
}

/// A contract error from a body that holds one, else [`ClientError::Unexpected`].
fn from_text(status: StatusCode, retry_after: Option<Duration>, text: &str) -> ClientError {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => ClientError::Api {
            status: status.as_u16(),
            code: body.code,
            message: body.error,
            retry_after,
        },
        Err(_) => ClientError::Unexpected {
            status: status.as_u16(),
            body: text.chars().take(200).collect(),
        },
    }
}
