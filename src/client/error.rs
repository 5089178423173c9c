//! What a client call can fail with: the server's refusal with its contract code, or the
//! network, or an answer that is not the contract's.

use std::time::Duration;

/// Why a [`super::Client`] call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server refused, with the contract's `{"error", "code"}` body
    /// (`../shared/spec/API.md` §2 and §4a: `TYPE_NOT_ALLOWED`, `MEDIA_NOT_FOUND`, ...).
    #[error("{status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable code, e.g. `FILE_TOO_LARGE`.
        code: String,
        /// The server's sentence.
        message: String,
        /// When to try again, for refusals that may pass (429, 503).
        retry_after: Option<Duration>,
    },
    /// The server could not be reached, or the connection broke.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// An answer that is not the contract's (a proxy's error page, say).
    #[error("unexpected answer {status}: {body}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A file to upload could not be read.
    #[error("cannot read {path}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The base URL is not an absolute http(s) URL.
    #[error("not an http(s) base URL: {0}")]
    InvalidUrl(String),
}

impl ClientError {
    /// The contract's code of a refusal (`None` for the other errors).
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status of a refusal or an unexpected answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Unexpected { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}
