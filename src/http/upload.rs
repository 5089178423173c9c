//! `POST {prefix}/upload`: stream the file into staging, check it, queue a job, answer 202.
//!
//! Fields may come in any order, so the file is streamed to staging as it arrives (its size
//! checked on the way, its first bytes kept for sniffing) and judged once the form has ended.

use axum::Json;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, FORM_OVERHEAD};
use crate::ImagePipeline;
use crate::intake::{self, HEAD_BYTES, Staged, SubmitError};
use crate::queue::JobId;

/// Longest accepted text field (`sourceType`, `sourceId`).
const MAX_FIELD_BYTES: usize = 1024;

/// What the form held.
#[derive(Default)]
struct Form {
    staged: Option<Staged>,
    source_type: Option<String>,
    source_id: Option<String>,
}

/// Accepts an upload: 202 with `jobId`, `message`, `statusUrl` and a `Location` header.
pub async fn upload(
    State(pipeline): State<ImagePipeline>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let max_bytes = pipeline.config().max_file_size;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_bytes + FORM_OVERHEAD) {
        return Err(ApiError::FileTooLarge { max_bytes });
    }
    let mut multipart = multipart.map_err(|_| ApiError::NoFile)?;
    let mut form = Form::default();
    if let Err(e) = read_form(&pipeline, &mut multipart, &mut form).await {
        if let Some(staged) = form.staged {
            // Best effort; the staging sweep removes what this misses.
            let _ = pipeline.storage().delete(&staged.key).await;
        }
        return Err(e);
    }
    let Some(staged) = form.staged else {
        return Err(ApiError::NoFile);
    };
    let job_id = intake::enqueue(
        &pipeline,
        staged,
        form.source_type.as_deref(),
        form.source_id.as_deref(),
    )
    .await?;
    Ok(accepted(&pipeline, &job_id))
}

fn accepted(pipeline: &ImagePipeline, job_id: &JobId) -> Response {
    let status_url = format!("{}/status/{job_id}", pipeline.config().route_prefix);
    let body = json!({
        "jobId": job_id,
        "message": "File uploaded. Processing started.",
        "statusUrl": status_url,
    });
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, status_url)],
        Json(body),
    )
        .into_response()
}

async fn read_form(
    pipeline: &ImagePipeline,
    multipart: &mut Multipart,
    form: &mut Form,
) -> Result<(), ApiError> {
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(multipart_error(pipeline))?
    {
        match field.name() {
            Some("file") if form.staged.is_none() => {
                form.staged = Some(stage(pipeline, field).await?);
            }
            Some("sourceType") => form.source_type = Some(text(pipeline, field).await?),
            Some("sourceId") => form.source_id = Some(text(pipeline, field).await?),
            _ => drain(pipeline, field).await?,
        }
    }
    Ok(())
}

/// Streams the file part into a new staging object, enforcing `max_file_size` as it goes.
async fn stage(pipeline: &ImagePipeline, mut field: Field<'_>) -> Result<Staged, ApiError> {
    let max_bytes = pipeline.config().max_file_size;
    let job_id = JobId::generate();
    let key = pipeline.storage().keys().staging(&job_id);
    let filename = field.file_name().map(str::to_owned);
    let mut writer = pipeline
        .storage()
        .writer(&key)
        .map_err(|e| ApiError::from(SubmitError::Storage(e)))?;
    let mut size: u64 = 0;
    let mut head = Vec::new();
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                writer.abort().await;
                return Err(multipart_error(pipeline)(e));
            }
        };
        size += chunk.len() as u64;
        if size > max_bytes {
            writer.abort().await;
            return Err(ApiError::FileTooLarge { max_bytes });
        }
        if head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        if let Err(e) = writer.write(chunk).await {
            writer.abort().await;
            return Err(SubmitError::Storage(e).into());
        }
    }
    writer
        .finish()
        .await
        .map_err(|e| ApiError::from(SubmitError::Storage(e)))?;
    Ok(Staged {
        job_id,
        key,
        size,
        head,
        filename,
    })
}

/// Reads a short text field; longer values are refused rather than buffered.
async fn text(pipeline: &ImagePipeline, mut field: Field<'_>) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error(pipeline))? {
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
async fn drain(pipeline: &ImagePipeline, mut field: Field<'_>) -> Result<(), ApiError> {
    while field
        .chunk()
        .await
        .map_err(multipart_error(pipeline))?
        .is_some()
    {}
    Ok(())
}

fn multipart_error(pipeline: &ImagePipeline) -> impl Fn(MultipartError) -> ApiError + '_ {
    move |e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::FileTooLarge {
                max_bytes: pipeline.config().max_file_size,
            }
        } else {
            ApiError::InvalidMultipart(e.body_text())
        }
    }
}
