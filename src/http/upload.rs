//! `POST {prefix}/upload`: stream the file into staging, check it, queue a job, answer 202.
//!
//! Fields may come in any order, so the file is streamed to staging as it arrives (through the
//! intake's [`Upload`], which checks the size on the way and keeps the first bytes for sniffing)
//! and judged once the form has ended. With access control or an upload hook, `token`,
//! `sourceType` and `sourceId` must come first: the upload is judged (credential, token's
//! source, hook, a single-use token spent) before a byte of the file is staged.

use axum::Json;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Credential;
use super::body::BodyTimedOut;
use super::error::ErrorBody;
use super::hook::UploadRequest;
use super::observe::{RequestId, TraceParent};
use super::{ApiError, AppState, FORM_OVERHEAD, client};
use crate::ids::JobId;
use crate::intake::tokens::{TokenError, UploadGrant};
use crate::intake::{Idempotency, Staged, SubmitError, Upload, Uploader, is_valid_idempotency_key};

/// Longest accepted text field (`sourceType`, `sourceId`).
const MAX_FIELD_BYTES: usize = 1024;

/// What the form held.
#[derive(Default)]
struct Form {
    staged: Option<Staged>,
    source_type: Option<String>,
    source_id: Option<String>,
    /// The upload token the upload came with (as `Authorization` or as the `token` field, for
    /// a browser form), recorded on its job.
    grant: Option<UploadGrant>,
    /// Where the job's end is to be sent, if not to `[webhooks] url`.
    callback_url: Option<String>,
}

/// The form the upload route reads, for the OpenAPI document (the route streams it).
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadForm {
    /// An upload token, for browsers (with `[auth] token_secret`); or send it as
    /// `Authorization: Bearer`. With access control, it and the fields must come before `file`.
    pub token: Option<String>,
    /// One of the configured source types: which variants to make.
    #[schema(example = "gallery")]
    pub source_type: String,
    /// Whose image it is, e.g. a user id.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", example = "user-42")]
    pub source_id: String,
    /// Where to send the job's end (a host in `[webhooks] allowed_callback_hosts`).
    pub callback_url: Option<String>,
    /// The image; its type is sniffed from its bytes.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Accepts an upload: 202 with `jobId`, `message`, `statusUrl` and a `Location` header.
#[utoipa::path(
    post,
    path = "/image-pipeline/upload",
    tag = "uploads",
    operation_id = "upload",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "1–255 visible ASCII characters: a repeat within the idempotency window answers the first upload's job, with `Idempotent-Replayed: true`"),
    ),
    responses(
        (status = 202, description = "Accepted: the job is queued", body = UploadAccepted,
            headers(
                ("Location" = String, description = "The status URL"),
                ("Idempotent-Replayed" = Option<String>, description = "`true` when this answers a repeat of an Idempotency-Key"),
            )),
        (status = 400, description = "NO_FILE, MISSING_FIELDS, UNKNOWN_SOURCE_TYPE, INVALID_SOURCE_ID, FIELDS_AFTER_FILE, INVALID_IDEMPOTENCY_KEY, INVALID_CALLBACK_URL, INVALID_MULTIPART", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED: no API key or upload token, or not a valid one", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: the key lacks the upload scope, or the token is for another source", body = ErrorBody),
        (status = 408, description = "REQUEST_TIMEOUT: the body came too slowly", body = ErrorBody),
        (status = 413, description = "FILE_TOO_LARGE", body = ErrorBody),
        (status = 415, description = "TYPE_NOT_ALLOWED: the type sniffed from the bytes is not allowed", body = ErrorBody),
        (status = 422, description = "UNREADABLE_IMAGE, TOO_MANY_PIXELS, OVER_BUDGET, IDEMPOTENCY_KEY_REUSED", body = ErrorBody),
        (status = 429, description = "TOO_MANY_PENDING (with Retry-After)", body = ErrorBody),
        (status = 503, description = "STORAGE_UNAVAILABLE, QUEUE_UNAVAILABLE, STORAGE_FULL, BUSY (with Retry-After)", body = ErrorBody),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let client = client::of(&extensions, &headers, &state.trusted_proxies).map(|ip| ip.to_string());
    let intake = &state.intake;
    let max_bytes = intake.rules().max_file_size;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_bytes + FORM_OVERHEAD) {
        return Err(SubmitError::FileTooLarge { max_bytes }.into());
    }
    let idempotency_key = idempotency_key(&headers)?;
    let mut multipart = multipart.map_err(|_| SubmitError::NoFile)?;
    let mut form = Form::default();
    let request = Request {
        state: &state,
        headers: &headers,
        extensions: &extensions,
        declared,
    };
    if let Err(e) = read_form(&request, &mut multipart, &mut form).await {
        if let Some(staged) = &form.staged {
            intake.discard(staged).await;
        }
        return Err(e);
    }
    let Some(staged) = form.staged else {
        return Err(SubmitError::NoFile.into());
    };
    let webhook_url = match intake.rules().webhook_target(form.callback_url.as_deref()) {
        Ok(target) => target,
        Err(e) => {
            intake.discard(&staged).await;
            return Err(e.into());
        }
    };
    let scope = idempotency_scope(request.credential(), form.grant.as_ref());
    let uploader = Uploader {
        client: client.as_deref(),
        token: form.grant.as_ref().map(|g| &g.id),
        request_id: extensions.get::<RequestId>().map(|id| id.0.as_str()),
        trace_parent: extensions.get::<TraceParent>().map(|t| t.0.as_str()),
        idempotency: idempotency_key.map(|key| Idempotency { scope: &scope, key }),
        webhook_url: webhook_url.as_deref(),
    };
    let size = staged.size;
    let queued = intake
        .enqueue(
            staged,
            form.source_type.as_deref(),
            form.source_id.as_deref(),
            uploader,
        )
        .await?;
    if queued.replayed {
        let mut response = accepted(&state, &queued.job_id);
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        return Ok(response);
    }
    state.metrics.uploaded(size);
    Ok(accepted(&state, &queued.job_id))
}

/// The request header naming an upload's idempotency key.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The answer header saying a 202 is an earlier upload's.
const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The upload's `Idempotency-Key`, if it sent one; a malformed one is refused before the body
/// is read.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, SubmitError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|key| is_valid_idempotency_key(key))
        .map(Some)
        .ok_or(SubmitError::InvalidIdempotencyKey)
}

/// Whose idempotency keys an upload's are: its upload token's, else its API key's, else
/// everyone's (the API is open).
fn idempotency_scope(credential: Option<&Credential>, grant: Option<&UploadGrant>) -> String {
    match (grant, credential) {
        (Some(grant), _) => format!("token:{}", grant.id),
        (None, Some(Credential::Key { sha256 })) => format!("key:{}", hex::encode(sha256)),
        _ => String::new(),
    }
}

/// The 202 answer of an accepted upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadAccepted {
    /// The job's id: unguessable, the credential to read its status.
    #[schema(example = "tz4a98xxat96iws9zmbrgj3a")]
    pub job_id: String,
    /// Always `File uploaded. Processing started.`
    #[schema(example = "File uploaded. Processing started.")]
    pub message: String,
    /// Where to ask how the job is going (also the `Location` header).
    #[schema(example = "/image-pipeline/status/tz4a98xxat96iws9zmbrgj3a")]
    pub status_url: String,
}

fn accepted(state: &AppState, job_id: &JobId) -> Response {
    let status_url = format!("{}/status/{job_id}", state.route_prefix);
    let body = UploadAccepted {
        job_id: job_id.to_string(),
        message: "File uploaded. Processing started.".to_owned(),
        status_url: status_url.clone(),
    };
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, status_url)],
        Json(body),
    )
        .into_response()
}

/// What reading the form needs of the request.
struct Request<'a> {
    state: &'a AppState,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
    /// The body's declared length.
    declared: Option<u64>,
}

impl Request<'_> {
    /// What the guard let the request through with (nothing when access control is off).
    fn credential(&self) -> Option<&Credential> {
        self.extensions.get::<Credential>()
    }

    /// Whether access control is on and the guard saw no credential: the form must bring a
    /// `token` before anything else.
    fn anonymous(&self) -> bool {
        self.state.auth.is_some() && self.credential().is_none()
    }
}

async fn read_form(
    request: &Request<'_>,
    multipart: &mut Multipart,
    form: &mut Form,
) -> Result<(), ApiError> {
    let intake = &request.state.intake;
    let max_bytes = intake.rules().max_file_size;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(multipart_error(max_bytes))?
    {
        match field.name() {
            Some("file") if form.staged.is_none() => {
                if request.state.fields_first() {
                    form.grant = judge(request, form).await?;
                }
                let filename = field.file_name().map(str::to_owned);
                let limit = form.grant.as_ref().and_then(|g| g.max_bytes);
                let mut upload = intake.begin_upload(filename, request.declared, limit)?;
                if request.headers.contains_key(IDEMPOTENCY_KEY) {
                    upload = upload.keep_digest();
                }
                form.staged = Some(stage(upload, field, max_bytes).await?);
            }
            Some("sourceType") => form.source_type = Some(text(field, max_bytes).await?),
            Some("sourceId") => form.source_id = Some(text(field, max_bytes).await?),
            Some("callbackUrl") if !request.anonymous() || form.grant.is_some() => {
                form.callback_url = Some(text(field, max_bytes).await?);
            }
            Some("token") => {
                let token = text(field, max_bytes).await?;
                if request.anonymous() && form.grant.is_none() {
                    form.grant = Some(intake.live_token(&token).map_err(ApiError::Token)?);
                }
            }
            // Without a credential, nothing but the fields that may bring one is read.
            _ if request.anonymous() && form.grant.is_none() => {
                return Err(ApiError::NoUploadCredential);
            }
            _ => drain(field, max_bytes).await?,
        }
    }
    Ok(())
}

/// Judges the upload before its file is read: with access control, a key or an upload token
/// must have come; the fields must have come and be valid; a token must be for this source;
/// the host's hook must pass it; a single-use token is then spent. Returns the token's grant.
async fn judge(request: &Request<'_>, form: &Form) -> Result<Option<UploadGrant>, ApiError> {
    let intake = &request.state.intake;
    let grant = match request.credential() {
        Some(Credential::Token(grant)) => Some(grant.clone()),
        Some(Credential::Key { .. }) => None,
        None if request.anonymous() => {
            Some(form.grant.clone().ok_or(ApiError::NoUploadCredential)?)
        }
        None => None,
    };
    let (Some(source_type), Some(source_id)) = (&form.source_type, &form.source_id) else {
        return Err(ApiError::FieldsAfterFile);
    };
    intake.check_fields(Some(source_type), Some(source_id))?;
    if grant
        .as_ref()
        .is_some_and(|g| !g.allows(source_type, source_id))
    {
        return Err(ApiError::Token(TokenError::OtherSource));
    }
    if let Some(hook) = &request.state.upload_hook {
        let upload = UploadRequest {
            headers: request.headers,
            extensions: request.extensions,
            source_type,
            source_id,
        };
        hook.check(&upload).await.map_err(ApiError::Refused)?;
    }
    if let Some(grant) = &grant {
        intake.spend_token(grant).await.map_err(ApiError::Token)?;
    }
    Ok(grant)
}

/// Streams the file part into `upload`; on any error the partial object is dropped.
async fn stage(
    mut upload: Upload,
    mut field: Field<'_>,
    max_bytes: u64,
) -> Result<Staged, ApiError> {
    loop {
        let written = match field.chunk().await {
            Ok(Some(chunk)) => upload.write(chunk).await.map_err(ApiError::from),
            Ok(None) => break,
            Err(e) => Err(multipart_error(max_bytes)(e)),
        };
        if let Err(e) = written {
            upload.abort().await;
            return Err(e);
        }
    }
    Ok(upload.finish().await?)
}

/// Reads a short text field; longer values are refused rather than buffered.
async fn text(mut field: Field<'_>, max_bytes: u64) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error(max_bytes))? {
        if bytes.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(ApiError::InvalidMultipart(format!(
                "field {:?} is longer than {MAX_FIELD_BYTES} bytes",
                field.name().unwrap_or_default()
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map(|s| s.trim().to_owned())
        .map_err(|_| ApiError::InvalidMultipart("a text field is not UTF-8".to_owned()))
}

/// Skips a part the contract does not use.
async fn drain(mut field: Field<'_>, max_bytes: u64) -> Result<(), ApiError> {
    while field
        .chunk()
        .await
        .map_err(multipart_error(max_bytes))?
        .is_some()
    {}
    Ok(())
}

/// A multipart failure: over the body limit is `FILE_TOO_LARGE`, a body cut off by its pace
/// `REQUEST_TIMEOUT`, anything else a bad form.
fn multipart_error(max_bytes: u64) -> impl Fn(MultipartError) -> ApiError {
    move |e| {
        if BodyTimedOut::in_chain(&e).is_some() {
            ApiError::BodyTimedOut
        } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            SubmitError::FileTooLarge { max_bytes }.into()
        } else {
            ApiError::InvalidMultipart(e.body_text())
        }
    }
}
