//! `ApiError`: the only place that knows HTTP statuses and contract codes.
//!
//! Which error type where: lower layers return their own enums (`SubmitError`, `QueueError`,
//! `StorageError`, `CatalogError`); handlers return `ApiError`, which wraps an upload refusal as
//! it is and says, in `status()` and `code()`, what each lower failure becomes. Bodies are
//! `{"error": "<message>", "code": "<CODE>"}`. Server-side failures keep their detail in a
//! response extension that `log_server_errors` logs once; the client never sees it.

use std::time::Duration;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::hook::HookRefusal;
use crate::catalog::CatalogError;
use crate::config::Scope;
use crate::intake::SubmitError;
use crate::intake::tokens::TokenError;
use crate::queue::QueueError;
use crate::storage::StorageError;

/// An error answer of the API: an upload refusal (one code per [`SubmitError`] variant) or one
/// of the other routes' codes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// An upload refused by the intake; its message is the contract's sentence.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// 400 `INVALID_MULTIPART`: the body is not a readable multipart form.
    #[error("Malformed multipart body: {0}")]
    InvalidMultipart(String),
    /// 400 `INVALID_LIMIT`: a media page's `limit` is not a whole number from 1 to 500.
    #[error("Invalid limit: expected a whole number from 1 to 500")]
    InvalidLimit,
    /// 400 `INVALID_CURSOR`: a media page's `cursor` is not one this service gave out.
    #[error("Invalid cursor: pass the nextCursor of the previous page")]
    InvalidCursor,
    /// 400 `INVALID_WAIT`: the status route's `wait` is not a number of seconds.
    #[error("Invalid wait: expected a number of seconds from 0 to 30")]
    InvalidWait,
    /// 400 `INVALID_TOKEN_REQUEST`: the token request's body is not the JSON it should be.
    #[error("Invalid token request: {0}")]
    InvalidTokenRequest(String),
    /// 401 `UNAUTHORIZED` (with `WWW-Authenticate`): no API key, or not one configured.
    #[error("An API key is required: send Authorization: Bearer <key>")]
    Unauthorized,
    /// 401 `UNAUTHORIZED` from the upload route: neither a key nor an upload token came.
    #[error(
        "An API key or upload token is required: send Authorization: Bearer <key or token>, or a token field before the file"
    )]
    NoUploadCredential,
    /// 403 `FORBIDDEN`: the key lacks the route's scope.
    #[error("This key may not do this: it lacks the {} scope", .0.as_str())]
    Forbidden(Scope),
    /// 403 `FORBIDDEN` from `/files` with signed links: not signed here, altered or expired.
    #[error("This link is not signed, or has expired: ask the API for the media again")]
    LinkNotValid,
    /// 400 `FIELDS_AFTER_FILE`: with access control or an upload hook, `sourceType` and
    /// `sourceId` must come before the file.
    #[error("sourceType and sourceId must come before the file in the form")]
    FieldsAfterFile,
    /// An upload token refused, or a token request that cannot be granted: 401 `UNAUTHORIZED`
    /// (not valid, expired, spent), 403 `FORBIDDEN` (another source or job), 400
    /// `INVALID_TOKEN_REQUEST`, a field's own code, or 503 `QUEUE_UNAVAILABLE`.
    #[error(transparent)]
    Token(TokenError),
    /// 401 or 403 from the host's upload hook.
    #[error("{}", match .0 {
        HookRefusal::Unauthorized => "Sign in to upload",
        HookRefusal::Forbidden(sentence) => sentence.as_str(),
    })]
    Refused(HookRefusal),
    /// 404 `JOB_NOT_FOUND`.
    #[error("Job not found")]
    JobNotFound,
    /// 404 `MEDIA_NOT_FOUND`.
    #[error("Media not found")]
    MediaNotFound,
    /// 404 `NOT_FOUND`: no such route or file.
    #[error("Not found")]
    NotFound,
    /// 503 `STORAGE_UNAVAILABLE` outside the upload route.
    #[error("Object storage is unavailable")]
    StorageUnavailable(#[source] StorageError),
    /// 503 `QUEUE_UNAVAILABLE` outside the upload route.
    #[error("The job database is unavailable")]
    QueueUnavailable(#[source] QueueError),
    /// 408 `REQUEST_TIMEOUT`: the body stopped or came slower than the minimum rate.
    #[error("The request body arrived too slowly")]
    BodyTimedOut,
    /// 500 `INTERNAL`: a defect (a handler panicked); the detail is in the logs.
    #[error("Internal error")]
    Internal,
}

/// The body of every refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiError)]
pub struct ErrorBody {
    /// What went wrong, in a sentence for people.
    #[schema(example = "Unknown sourceType: banner")]
    pub error: String,
    /// What went wrong, as one of [`ApiError::CODES`], for programs.
    #[schema(example = "UNKNOWN_SOURCE_TYPE")]
    pub code: String,
}

/// `Retry-After` of a 503 for the database or storage being away: long enough not to add load
/// while it recovers, short enough that a client retrying by it loses little time.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The detail of a 5xx answer, for the logging middleware.
#[derive(Debug, Clone)]
pub struct ServerErrorDetail(pub String);

impl ApiError {
    /// Every code an error answer can carry, in the contract's order.
    pub const CODES: &'static [&'static str] = &[
        "NO_FILE",
        "MISSING_FIELDS",
        "UNKNOWN_SOURCE_TYPE",
        "INVALID_SOURCE_ID",
        "FILE_TOO_LARGE",
        "TYPE_NOT_ALLOWED",
        "UNREADABLE_IMAGE",
        "TOO_MANY_PIXELS",
        "OVER_BUDGET",
        "STORAGE_UNAVAILABLE",
        "QUEUE_UNAVAILABLE",
        "UNAUTHORIZED",
        "FORBIDDEN",
        "FIELDS_AFTER_FILE",
        "INVALID_WAIT",
        "IDEMPOTENCY_KEY_REUSED",
        "TOO_MANY_PENDING",
        "BUSY",
        "STORAGE_FULL",
        "INVALID_IDEMPOTENCY_KEY",
        "INVALID_CALLBACK_URL",
        "INVALID_MULTIPART",
        "INVALID_LIMIT",
        "INVALID_CURSOR",
        "INVALID_TOKEN_REQUEST",
        "JOB_NOT_FOUND",
        "MEDIA_NOT_FOUND",
        "NOT_FOUND",
        "REQUEST_TIMEOUT",
        "INTERNAL",
    ];

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Token(e) => match e {
                TokenError::Fields(e) => ApiError::submit_status(e),
                TokenError::Off | TokenError::Ttl { .. } | TokenError::MaxBytes { .. } => {
                    StatusCode::BAD_REQUEST
                }
                TokenError::Invalid | TokenError::Expired | TokenError::Spent => {
                    StatusCode::UNAUTHORIZED
                }
                TokenError::OtherSource | TokenError::OtherJob => StatusCode::FORBIDDEN,
                TokenError::Queue(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::Submit(e) => ApiError::submit_status(e),
            ApiError::InvalidMultipart(_)
            | ApiError::InvalidLimit
            | ApiError::InvalidCursor
            | ApiError::InvalidWait
            | ApiError::InvalidTokenRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized
            | ApiError::NoUploadCredential
            | ApiError::Refused(HookRefusal::Unauthorized) => StatusCode::UNAUTHORIZED,
            ApiError::Refused(HookRefusal::Forbidden(_)) => StatusCode::FORBIDDEN,
            ApiError::FieldsAfterFile => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) | ApiError::LinkNotValid => StatusCode::FORBIDDEN,
            ApiError::JobNotFound | ApiError::MediaNotFound | ApiError::NotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::StorageUnavailable(_) | ApiError::QueueUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::BodyTimedOut => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Submit(e) => ApiError::submit_code(e),
            ApiError::Token(e) => match e {
                TokenError::Fields(e) => ApiError::submit_code(e),
                TokenError::Off | TokenError::Ttl { .. } | TokenError::MaxBytes { .. } => {
                    "INVALID_TOKEN_REQUEST"
                }
                TokenError::Invalid | TokenError::Expired | TokenError::Spent => "UNAUTHORIZED",
                TokenError::OtherSource | TokenError::OtherJob => "FORBIDDEN",
                TokenError::Queue(_) => "QUEUE_UNAVAILABLE",
            },
            ApiError::InvalidMultipart(_) => "INVALID_MULTIPART",
            ApiError::InvalidLimit => "INVALID_LIMIT",
            ApiError::InvalidCursor => "INVALID_CURSOR",
            ApiError::InvalidWait => "INVALID_WAIT",
            ApiError::InvalidTokenRequest(_) => "INVALID_TOKEN_REQUEST",
            ApiError::Unauthorized
            | ApiError::NoUploadCredential
            | ApiError::Refused(HookRefusal::Unauthorized) => "UNAUTHORIZED",
            ApiError::Refused(HookRefusal::Forbidden(_)) => "FORBIDDEN",
            ApiError::FieldsAfterFile => "FIELDS_AFTER_FILE",
            ApiError::Forbidden(_) | ApiError::LinkNotValid => "FORBIDDEN",
            ApiError::JobNotFound => "JOB_NOT_FOUND",
            ApiError::MediaNotFound => "MEDIA_NOT_FOUND",
            ApiError::NotFound => "NOT_FOUND",
            ApiError::StorageUnavailable(_) => "STORAGE_UNAVAILABLE",
            ApiError::QueueUnavailable(_) => "QUEUE_UNAVAILABLE",
            ApiError::BodyTimedOut => "REQUEST_TIMEOUT",
            ApiError::Internal => "INTERNAL",
        }
    }

    /// The status of an upload refusal, also when a token request repeats it.
    fn submit_status(e: &SubmitError) -> StatusCode {
        match e {
            SubmitError::NoFile
            | SubmitError::MissingFields
            | SubmitError::UnknownSourceType(_)
            | SubmitError::InvalidSourceId
            | SubmitError::InvalidIdempotencyKey
            | SubmitError::InvalidCallbackUrl => StatusCode::BAD_REQUEST,
            SubmitError::FileTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            SubmitError::TypeNotAllowed { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            SubmitError::Unreadable(_)
            | SubmitError::TooManyPixels(_)
            | SubmitError::OverBudget(_)
            | SubmitError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            SubmitError::Storage(_) | SubmitError::Queue(_) | SubmitError::Busy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            SubmitError::TooManyPending { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The code of an upload refusal.
    fn submit_code(e: &SubmitError) -> &'static str {
        match e {
            SubmitError::NoFile => "NO_FILE",
            SubmitError::MissingFields => "MISSING_FIELDS",
            SubmitError::UnknownSourceType(_) => "UNKNOWN_SOURCE_TYPE",
            SubmitError::InvalidSourceId => "INVALID_SOURCE_ID",
            SubmitError::FileTooLarge { .. } => "FILE_TOO_LARGE",
            SubmitError::TypeNotAllowed { .. } => "TYPE_NOT_ALLOWED",
            SubmitError::Unreadable(_) => "UNREADABLE_IMAGE",
            SubmitError::TooManyPixels(_) => "TOO_MANY_PIXELS",
            SubmitError::OverBudget(_) => "OVER_BUDGET",
            SubmitError::Storage(e) if e.is_full() => "STORAGE_FULL",
            SubmitError::Storage(_) => "STORAGE_UNAVAILABLE",
            SubmitError::Queue(_) => "QUEUE_UNAVAILABLE",
            SubmitError::Busy { .. } => "BUSY",
            SubmitError::TooManyPending { .. } => "TOO_MANY_PENDING",
            SubmitError::InvalidIdempotencyKey => "INVALID_IDEMPOTENCY_KEY",
            SubmitError::InvalidCallbackUrl => "INVALID_CALLBACK_URL",
            SubmitError::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
        }
    }

    /// When to try again, for every refusal that may pass: the intake's own figure, or
    /// [`UNAVAILABLE_RETRY_AFTER`] for the database or storage being away.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Submit(
                SubmitError::Busy { retry_after } | SubmitError::TooManyPending { retry_after },
            ) => Some(*retry_after),
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => Some(UNAVAILABLE_RETRY_AFTER),
            _ => None,
        }
    }

    /// What the logs are told of a server-side failure (never the client).
    fn server_detail(&self) -> Option<String> {
        match self {
            ApiError::Submit(SubmitError::Storage(e)) | ApiError::StorageUnavailable(e) => {
                Some(e.to_string())
            }
            ApiError::Submit(SubmitError::Queue(e))
            | ApiError::QueueUnavailable(e)
            | ApiError::Token(TokenError::Queue(e)) => Some(e.to_string()),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: self.to_string(),
            code: self.code().to_owned(),
        });
        let mut response = (self.status(), body).into_response();
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs().max(1).to_string();
            if let Ok(value) = secs.parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if self.status() == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"ximagepipeline\""),
            );
        }
        if let Some(detail) = self.server_detail() {
            response.extensions_mut().insert(ServerErrorDetail(detail));
        }
        response
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        ApiError::QueueUnavailable(e)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        ApiError::StorageUnavailable(e)
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Queue(e) => e.into(),
            CatalogError::Storage(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `CODES` (what the OpenAPI document lists) is exactly the set of codes `code()` returns:
    /// read from this file's match arms, so a new variant's code cannot be left out.
    #[test]
    fn the_code_list_is_every_code_the_matches_return() {
        let source = include_str!("error.rs");
        let returned: BTreeSet<&str> = source
            .split("=> \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .filter(|word| word.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect();
        let listed: BTreeSet<&str> = ApiError::CODES.iter().copied().collect();
        assert_eq!(returned, listed);
        assert_eq!(listed.len(), ApiError::CODES.len(), "a code listed twice");
    }
}
