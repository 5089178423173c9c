//! The upload hook: a host app's own check of who may upload into a source, run on the parsed
//! `sourceType` and `sourceId` before a byte of the file is staged. With a hook (or `[auth]`)
//! those fields must come before the file in the form (400 `FIELDS_AFTER_FILE` otherwise).

use async_trait::async_trait;
use axum::http::{Extensions, HeaderMap};

/// What a hook sees of an upload: the request's headers and extensions (where the host's own
/// middleware put its session or user) and the source the upload is for.
#[derive(Debug)]
pub struct UploadRequest<'a> {
    /// The request headers (cookies, `Authorization`).
    pub headers: &'a HeaderMap,
    /// The request extensions, as the host's layers left them.
    pub extensions: &'a Extensions,
    /// The form's `sourceType`.
    pub source_type: &'a str,
    /// The form's `sourceId`.
    pub source_id: &'a str,
}

/// Why a hook refused an upload; answered as the contract's error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookRefusal {
    /// 401 `UNAUTHORIZED`: the host does not know who is uploading.
    Unauthorized,
    /// 403 `FORBIDDEN`: the uploader may not upload into this source; the sentence is shown.
    Forbidden(String),
}

/// A host app's check of an upload, e.g. that the signed-in user owns `sourceId`.
#[async_trait]
pub trait UploadHook: Send + Sync {
    /// `Ok` lets the upload go on; a refusal ends it before the file is read.
    async fn check(&self, upload: &UploadRequest<'_>) -> Result<(), HookRefusal>;
}
