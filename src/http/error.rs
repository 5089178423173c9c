//! `ApiError`: the only place that knows HTTP statuses and contract codes.
//!
//! Which error type where: lower layers return their own enums (`SubmitError`, `QueueError`,
//! `StorageError`); handlers return `ApiError`, and the `From` impls below say which code each
//! lower failure becomes. Bodies are `{"error": "<message>", "code": "<CODE>"}`. Server-side
//! failures keep their detail in a response extension that `log_server_errors` logs once;
//! the client never sees it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::intake::SubmitError;
use crate::pipeline::PipelineError;

/// An error answer of the API; one variant per contract code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400 `NO_FILE`.
    #[error("No file provided")]
    NoFile,
    /// 400 `MISSING_FIELDS`.
    #[error("sourceType and sourceId are required")]
    MissingFields,
    /// 400 `UNKNOWN_SOURCE_TYPE`.
    #[error("Unknown sourceType: {0}")]
    UnknownSourceType(String),
    /// 400 `INVALID_SOURCE_ID`.
    #[error("Invalid sourceId")]
    InvalidSourceId,
    /// 400 `INVALID_MULTIPART`: the body is not a readable multipart form.
    #[error("Malformed multipart body: {0}")]
    InvalidMultipart(String),
    /// 413 `FILE_TOO_LARGE`.
    #[error("File too large. Maximum size: {}MB", .max_bytes / 1_048_576)]
    FileTooLarge {
        /// The configured limit in bytes.
        max_bytes: u64,
    },
    /// 415 `TYPE_NOT_ALLOWED`.
    #[error("File type {mime} not allowed")]
    TypeNotAllowed {
        /// The sniffed type.
        mime: String,
    },
    /// 422 `UNREADABLE_IMAGE`.
    #[error("Unreadable image: {0}")]
    UnreadableImage(String),
    /// 422 `TOO_MANY_PIXELS`.
    #[error("{0}")]
    TooManyPixels(String),
    /// 404 `JOB_NOT_FOUND`.
    #[error("Job not found")]
    JobNotFound,
    /// 404 `MEDIA_NOT_FOUND`.
    #[error("Media not found")]
    MediaNotFound,
    /// 404 `NOT_FOUND`: no such route or file.
    #[error("Not found")]
    NotFound,
    /// 503 `STORAGE_UNAVAILABLE`.
    #[error("{message}")]
    StorageUnavailable {
        /// What the client is told.
        message: &'static str,
        /// What the log is told.
        detail: String,
    },
    /// 503 `QUEUE_UNAVAILABLE`.
    #[error("{message}")]
    QueueUnavailable {
        /// What the client is told.
        message: &'static str,
        /// What the log is told.
        detail: String,
    },
}

/// The detail of a 5xx answer, for the logging middleware.
#[derive(Debug, Clone)]
pub struct ServerErrorDetail(pub String);

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NoFile
            | ApiError::MissingFields
            | ApiError::UnknownSourceType(_)
            | ApiError::InvalidSourceId
            | ApiError::InvalidMultipart(_) => StatusCode::BAD_REQUEST,
            ApiError::FileTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TypeNotAllowed { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::UnreadableImage(_) | ApiError::TooManyPixels(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::JobNotFound | ApiError::MediaNotFound | ApiError::NotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::StorageUnavailable { .. } | ApiError::QueueUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NoFile => "NO_FILE",
            ApiError::MissingFields => "MISSING_FIELDS",
            ApiError::UnknownSourceType(_) => "UNKNOWN_SOURCE_TYPE",
            ApiError::InvalidSourceId => "INVALID_SOURCE_ID",
            ApiError::InvalidMultipart(_) => "INVALID_MULTIPART",
            ApiError::FileTooLarge { .. } => "FILE_TOO_LARGE",
            ApiError::TypeNotAllowed { .. } => "TYPE_NOT_ALLOWED",
            ApiError::UnreadableImage(_) => "UNREADABLE_IMAGE",
            ApiError::TooManyPixels(_) => "TOO_MANY_PIXELS",
            ApiError::JobNotFound => "JOB_NOT_FOUND",
            ApiError::MediaNotFound => "MEDIA_NOT_FOUND",
            ApiError::NotFound => "NOT_FOUND",
            ApiError::StorageUnavailable { .. } => "STORAGE_UNAVAILABLE",
            ApiError::QueueUnavailable { .. } => "QUEUE_UNAVAILABLE",
        }
    }

    /// A 503 for a failed database read or write outside the upload route.
    pub fn database(e: impl std::fmt::Display) -> ApiError {
        ApiError::QueueUnavailable {
            message: "The job database is unavailable",
            detail: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.to_string(), "code": self.code() }));
        let mut response = (self.status(), body).into_response();
        if let ApiError::StorageUnavailable { detail, .. }
        | ApiError::QueueUnavailable { detail, .. } = self
        {
            response.extensions_mut().insert(ServerErrorDetail(detail));
        }
        response
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::NoFile => ApiError::NoFile,
            SubmitError::MissingFields => ApiError::MissingFields,
            SubmitError::UnknownSourceType(t) => ApiError::UnknownSourceType(t),
            SubmitError::InvalidSourceId => ApiError::InvalidSourceId,
            SubmitError::FileTooLarge { max_bytes } => ApiError::FileTooLarge { max_bytes },
            SubmitError::TypeNotAllowed { mime } => ApiError::TypeNotAllowed { mime },
            SubmitError::Unreadable(e @ PipelineError::TooManyPixels { .. }) => {
                ApiError::TooManyPixels(e.to_string())
            }
            SubmitError::Unreadable(e) => ApiError::UnreadableImage(e.to_string()),
            SubmitError::Storage(e) => ApiError::StorageUnavailable {
                message: "Failed to upload file to storage",
                detail: e.to_string(),
            },
            SubmitError::Queue(e) => ApiError::QueueUnavailable {
                message: "Failed to create processing job",
                detail: e.to_string(),
            },
        }
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Storage(e) => ApiError::StorageUnavailable {
                message: "Object storage is unavailable",
                detail: e.to_string(),
            },
            e => ApiError::database(e),
        }
    }
}
