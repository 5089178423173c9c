//! An upload's form: its bytes (a file, a buffer or a stream), where they go, and the optional
//! idempotency key, upload token and callback URL.

use std::path::Path;

use bytes::Bytes;
use futures::Stream;
use reqwest::multipart::{Form, Part};
use reqwest::{RequestBuilder, Response};

use super::ClientError;

/// The bytes of an upload. The server sniffs the type from them; the file name is only a label.
pub struct UploadBody {
    part: Part,
}

impl UploadBody {
    /// A file, streamed from disk (never read whole into memory).
    ///
    /// # Errors
    /// [`ClientError::File`] when it cannot be opened.
    pub async fn from_path(path: impl AsRef<Path>) -> Result<UploadBody, ClientError> {
        let path = path.as_ref();
        let unreadable = |source| ClientError::File {
            path: path.to_owned(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        let length = file.metadata().await.map_err(unreadable)?.len();
        let stream = tokio_util::io::ReaderStream::new(file);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "upload".to_owned());
        let part = Part::stream_with_length(reqwest::Body::wrap_stream(stream), length);
        Ok(UploadBody {
            part: part.file_name(name),
        })
    }

    /// Bytes in memory.
    pub fn bytes(bytes: impl Into<Bytes>) -> UploadBody {
        let bytes: Bytes = bytes.into();
        UploadBody {
            part: Part::stream_with_length(bytes.clone(), bytes.len() as u64).file_name("upload"),
        }
    }

    /// A stream of chunks, sent as they come (chunked: the server enforces the size limit
    /// while reading).
    pub fn stream<S, E>(stream: S) -> UploadBody
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        UploadBody {
            part: Part::stream(reqwest::Body::wrap_stream(stream)).file_name("upload"),
        }
    }

    /// The file name sent with the bytes (a label only).
    #[must_use]
    pub fn file_name(self, name: &str) -> UploadBody {
        UploadBody {
            part: self.part.file_name(name.to_owned()),
        }
    }
}

/// One upload: its bytes, `sourceType` and `sourceId`, and what else it may carry.
pub struct Upload {
    source_type: String,
    source_id: String,
    body: UploadBody,
    idempotency_key: Option<String>,
    token: Option<String>,
    callback_url: Option<String>,
}

/// The 202 of an accepted upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The job's id, for [`super::Client::status`] and [`super::Client::wait`].
    pub job_id: String,
    /// The status route's path.
    pub status_url: String,
    /// The server's sentence.
    pub message: String,
    /// Whether this answered a repeat of the idempotency key (nothing new was stored).
    pub replayed: bool,
}

impl Upload {
    /// `body` for `source_type` (which variants to make) and `source_id` (whose it is).
    pub fn new(source_type: &str, source_id: &str, body: UploadBody) -> Upload {
        Upload {
            source_type: source_type.to_owned(),
            source_id: source_id.to_owned(),
            body,
            idempotency_key: None,
            token: None,
            callback_url: None,
        }
    }

    /// An `Idempotency-Key`: sent again (after a lost answer, say), the upload is answered
    /// with the first one's job and nothing is stored twice.
    #[must_use]
    pub fn idempotency_key(mut self, key: &str) -> Upload {
        self.idempotency_key = Some(key.to_owned());
        self
    }

    /// An upload token, sent as the form's `token` field (before the file, as access control
    /// needs).
    #[must_use]
    pub fn token(mut self, token: &str) -> Upload {
        self.token = Some(token.to_owned());
        self
    }

    /// Where the server sends the job's end (a host it allows).
    #[must_use]
    pub fn callback_url(mut self, url: &str) -> Upload {
        self.callback_url = Some(url.to_owned());
        self
    }

    /// Sends the form on `request`: the fields first, the file last.
    pub(super) async fn send(self, request: RequestBuilder) -> Result<Response, ClientError> {
        let mut form = Form::new();
        if let Some(token) = self.token {
            form = form.text("token", token);
        }
        form = form
            .text("sourceType", self.source_type)
            .text("sourceId", self.source_id);
        if let Some(url) = self.callback_url {
            form = form.text("callbackUrl", url);
        }
        form = form.part("file", self.body.part);
        let mut request = request.multipart(form);
        if let Some(key) = self.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        Ok(request.send().await?)
    }
}
