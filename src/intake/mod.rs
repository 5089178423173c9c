//! Intake: turning an upload into a PENDING job, or into a clear refusal with nothing left behind.
//!
//! [`Intake`] holds what accepting an upload needs and nothing more: the job store, the object
//! storage and the upload rules of the configuration. The HTTP route streams the file into
//! staging through an [`Upload`] (fields may come in any order), then calls [`Intake::enqueue`];
//! the library's `submit` stages bytes it already holds. Either way the checks run in the
//! contract's order and any refusal deletes the staging object before it is reported.
//!
//! [`tokens`] grants uploads into one source to a browser that holds no API key.

pub mod tokens;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Config, WebhooksConfig};
use crate::ids::{JobId, TokenId};
use crate::pipeline::{self, Limits, PipelineError, sniff::Sniffed};
use crate::queue::{IdempotencyKey, Inserted, JobStore, NewJob, PendingCaps, QueueError, now_ms};
use crate::storage::{ObjectWriter, Storage, StorageError};
use tokens::{MintedToken, TokenError, TokenRequest, TokenSigner, UploadGrant};

/// How many leading bytes of an upload are kept in memory for sniffing and the header probe.
pub const HEAD_BYTES: usize = 64 * 1024;

/// When the header goes on past the head, how far into the staged object the probe reads
/// (once, after the upload ended). A header further in is left to the worker, which checks it
/// before decoding: the intake never holds more than this of an upload.
pub const PROBE_WINDOW: u64 = 1 << 20;

/// How long a client told `BUSY` is asked to wait.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How long a client told `TOO_MANY_PENDING` is asked to wait: its jobs take a while to run.
const PENDING_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Why an upload was refused. Each variant is one contract code (`http::ApiError` maps them).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// No `file` part was sent.
    #[error("No file provided")]
    NoFile,
    /// `sourceType` or `sourceId` is missing or empty.
    #[error("sourceType and sourceId are required")]
    MissingFields,
    /// The source type is not configured.
    #[error("Unknown sourceType: {0}")]
    UnknownSourceType(String),
    /// The source id does not match `^[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}$`.
    #[error("Invalid sourceId")]
    InvalidSourceId,
    /// The upload is over `max_file_size` (or its upload token's smaller limit).
    #[error("File too large. Maximum size: {}", size_text(*.max_bytes))]
    FileTooLarge {
        /// The limit it is over.
        max_bytes: u64,
    },
    /// The sniffed type is not in `allowed_mime_types`.
    #[error("File type {mime} not allowed")]
    TypeNotAllowed {
        /// The type sniffed from the bytes.
        mime: String,
    },
    /// The header cannot be read.
    #[error("Unreadable image: {0}")]
    Unreadable(#[source] PipelineError),
    /// The header declares a size over the pixel limits.
    #[error("{0}")]
    TooManyPixels(#[source] PipelineError),
    /// The header shows more decoding work than the budget allows.
    #[error("{0}")]
    OverBudget(#[source] PipelineError),
    /// The staging write failed.
    #[error("Failed to upload file to storage")]
    Storage(#[source] StorageError),
    /// The job insert failed.
    #[error("Failed to create processing job")]
    Queue(#[source] QueueError),
    /// Uploads in flight already hold the memory budget for uploads.
    #[error("Too many uploads in progress; retry shortly")]
    Busy {
        /// When to try again.
        retry_after: Duration,
    },
    /// The upload's source, or its client, already has as many pending jobs as allowed.
    #[error("Too many uploads are waiting to be processed; retry later")]
    TooManyPending {
        /// When to try again.
        retry_after: Duration,
    },
    /// The `Idempotency-Key` is not 1 to 255 visible ASCII characters.
    #[error("Invalid Idempotency-Key: expected 1 to 255 visible ASCII characters")]
    InvalidIdempotencyKey,
    /// The `callbackUrl` is not an http(s) URL of a host `[webhooks] allowed_callback_hosts`
    /// names.
    #[error("callbackUrl must be an http(s) URL on a host this service allows")]
    InvalidCallbackUrl,
    /// The `Idempotency-Key` was used, within its window, for an upload of another source or
    /// file.
    #[error("This Idempotency-Key was used for another upload (another source or file)")]
    IdempotencyKeyReused,
}

impl From<PipelineError> for SubmitError {
    /// A header that fails the probe: over the limits, or unreadable.
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::TooManyPixels { .. } => SubmitError::TooManyPixels(e),
            PipelineError::OverBudget { .. } => SubmitError::OverBudget(e),
            e => SubmitError::Unreadable(e),
        }
    }
}

/// The parts of the configuration that decide whether an upload is accepted.
#[derive(Debug, Clone)]
pub struct UploadRules {
    /// Largest accepted upload, in bytes.
    pub max_file_size: u64,
    /// MIME types (sniffed from bytes) that uploads may have.
    pub allowed_mime_types: Vec<String>,
    /// Pixel and side limits, checked from the header.
    pub limits: Limits,
    /// Every configured source type.
    pub source_types: BTreeSet<String>,
    /// Attempts a new job gets.
    pub max_attempts: u32,
    /// Memory all uploads in flight may hold together (heads and write buffers).
    pub memory_budget: u64,
    /// Pending jobs one source and one client may have.
    pub pending_caps: PendingCaps,
    /// Signs and reads upload tokens, when `[auth] token_secret` is set.
    pub tokens: Option<TokenSigner>,
    /// How long an `Idempotency-Key` answers repeats.
    pub idempotency_window: Duration,
    /// Where jobs' ends are sent, if anywhere.
    pub webhooks: Option<WebhooksConfig>,
}

impl UploadRules {
    /// The rules `config` sets.
    pub fn from_config(config: &Config) -> UploadRules {
        UploadRules {
            max_file_size: config.max_file_size,
            allowed_mime_types: config.allowed_mime_types.clone(),
            limits: config.limits,
            source_types: config.source_types.keys().cloned().collect(),
            max_attempts: config.worker.max_attempts,
            memory_budget: config.server.upload_memory_bytes,
            pending_caps: PendingCaps {
                source: config.fairness.max_pending_per_source,
                client: config.fairness.max_pending_per_client,
            },
            tokens: config
                .auth
                .as_ref()
                .and_then(|auth| auth.tokens.as_ref())
                .map(|t| TokenSigner::new(&t.secret, t.ttl)),
            idempotency_window: config.idempotency_window,
            webhooks: config.webhooks.clone(),
        }
    }

    /// Where an upload's end is sent: its `callbackUrl` when `[webhooks]
    /// allowed_callback_hosts` names its host, else `""` (the configured `url`) when there is
    /// one, else nowhere.
    ///
    /// # Errors
    /// `InvalidCallbackUrl` for a `callbackUrl` that is not an http(s) URL of an allowed host.
    pub fn webhook_target(&self, callback: Option<&str>) -> Result<Option<String>, SubmitError> {
        let Some(webhooks) = &self.webhooks else {
            return match callback {
                Some(_) => Err(SubmitError::InvalidCallbackUrl),
                None => Ok(None),
            };
        };
        let Some(callback) = callback else {
            return Ok(webhooks.url.as_ref().map(|_| String::new()));
        };
        let uri: axum::http::Uri = callback
            .parse()
            .map_err(|_| SubmitError::InvalidCallbackUrl)?;
        let allowed = matches!(uri.scheme_str(), Some("http" | "https"))
            && callback.len() <= 2048
            && uri.host().is_some_and(|host| {
                let host = host.to_ascii_lowercase();
                webhooks.allowed_callback_hosts.contains(&host)
            });
        match allowed {
            true => Ok(Some(callback.to_owned())),
            false => Err(SubmitError::InvalidCallbackUrl),
        }
    }

    /// A new upload token for `request`, valid from now.
    ///
    /// # Errors
    /// `Off` without `[auth] token_secret`; `Fields`, `Ttl` or `MaxBytes` for a request that
    /// cannot be granted.
    pub fn mint_token(&self, request: &TokenRequest) -> Result<MintedToken, TokenError> {
        let signer = self.tokens.as_ref().ok_or(TokenError::Off)?;
        signer.mint(request, self, unix_now())
    }

    /// Checks the form fields, in the contract's order.
    ///
    /// # Errors
    /// `MissingFields`, `UnknownSourceType` or `InvalidSourceId`.
    pub fn check_fields(
        &self,
        source_type: Option<&str>,
        source_id: Option<&str>,
    ) -> Result<(), SubmitError> {
        let (Some(source_type), Some(source_id)) = (source_type, source_id) else {
            return Err(SubmitError::MissingFields);
        };
        if source_type.is_empty() || source_id.is_empty() {
            return Err(SubmitError::MissingFields);
        }
        if !self.source_types.contains(source_type) {
            return Err(SubmitError::UnknownSourceType(source_type.to_owned()));
        }
        if !is_valid_source_id(source_id) {
            return Err(SubmitError::InvalidSourceId);
        }
        Ok(())
    }
}

/// Who an upload came from, as far as the intake records it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Uploader<'a> {
    /// The client's address, when known: counted by the per-client cap.
    pub client: Option<&'a str>,
    /// The upload token it came with, if any: that token may read the job's status.
    pub token: Option<&'a TokenId>,
    /// The id of the request that brought it, for the worker's logs.
    pub request_id: Option<&'a str>,
    /// The W3C `traceparent` of the request's span, when it is traced: the worker's spans
    /// join that trace.
    pub trace_parent: Option<&'a str>,
    /// The upload's `Idempotency-Key` and whose it is; the upload must have been staged with
    /// its digest ([`Upload::keep_digest`]).
    pub idempotency: Option<Idempotency<'a>>,
    /// Where the job's end is sent: a checked `callbackUrl`, `""` for `[webhooks] url`.
    pub webhook_url: Option<&'a str>,
}

/// An upload's `Idempotency-Key`: a repeat with the same key, source and file within
/// `idempotency_window_secs` gets the first upload's job and stores nothing.
#[derive(Debug, Clone, Copy)]
pub struct Idempotency<'a> {
    /// Whose key it is: the caller's API key or upload token, empty when the API is open.
    pub scope: &'a str,
    /// The key, as checked by [`is_valid_idempotency_key`].
    pub key: &'a str,
}

/// Whether `key` can be an `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub fn is_valid_idempotency_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// A queued upload: its job, and whether it is an earlier upload's (a repeat under the same
/// `Idempotency-Key`, which stored nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The job that runs (or ran) the upload.
    pub job_id: JobId,
    /// Whether the job is an earlier upload's.
    pub replayed: bool,
}

/// Accepts uploads: stages them, checks them, queues their jobs. Cheap to clone.
#[derive(Clone)]
pub struct Intake {
    jobs: Arc<dyn JobStore>,
    storage: Storage,
    rules: Arc<UploadRules>,
    /// The memory budget of uploads in flight, in KiB.
    budget: Arc<Semaphore>,
}

/// An upload already written to staging.
pub struct Staged {
    /// The job it will become.
    pub job_id: JobId,
    /// Its staging key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its first bytes (at most [`HEAD_BYTES`]).
    pub head: Vec<u8>,
    /// The client's file name, if any.
    pub filename: Option<String>,
    /// SHA-256 of its bytes, when asked for ([`Upload::keep_digest`]).
    pub sha256: Option<[u8; 32]>,
    /// Its share of the memory budget, held until it is queued or refused.
    _budget: Option<OwnedSemaphorePermit>,
}

/// An upload being streamed into staging: the size limit is enforced as the bytes arrive and
/// the first [`HEAD_BYTES`] are kept for sniffing. Nothing is visible until [`Upload::finish`].
pub struct Upload {
    writer: ObjectWriter,
    job_id: JobId,
    key: String,
    max_bytes: u64,
    size: u64,
    head: Vec<u8>,
    filename: Option<String>,
    digest: Option<Sha256>,
    budget: OwnedSemaphorePermit,
}

impl Upload {
    /// Computes the SHA-256 of the bytes as they pass, for an idempotency key's check.
    pub fn keep_digest(mut self) -> Upload {
        self.digest = Some(Sha256::new());
        self
    }

    /// Appends the next bytes of the file.
    ///
    /// # Errors
    /// `FileTooLarge` past `max_file_size`, `Storage` when the write fails; the upload must then
    /// be [aborted](Upload::abort).
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), SubmitError> {
        self.size += chunk.len() as u64;
        if self.size > self.max_bytes {
            return Err(SubmitError::FileTooLarge {
                max_bytes: self.max_bytes,
            });
        }
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        if let Some(digest) = &mut self.digest {
            digest.update(&chunk);
        }
        self.writer.write(chunk).await.map_err(SubmitError::Storage)
    }

    /// Makes the staged object visible, ready for [`Intake::enqueue`].
    ///
    /// # Errors
    /// `Storage` when the store refuses the object.
    pub async fn finish(self) -> Result<Staged, SubmitError> {
        self.writer.finish().await.map_err(SubmitError::Storage)?;
        Ok(Staged {
            job_id: self.job_id,
            key: self.key,
            size: self.size,
            head: self.head,
            filename: self.filename,
            sha256: self.digest.map(|d| d.finalize().into()),
            _budget: Some(self.budget),
        })
    }

    /// Drops what was written so far.
    pub async fn abort(self) {
        self.writer.abort().await;
    }
}

/// Whether `id` is a valid `sourceId` (it becomes part of object keys).
pub fn is_valid_source_id(id: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    id.len() <= 128 && id.starts_with(|c: char| c.is_ascii_alphanumeric()) && id.chars().all(ok)
}

impl Intake {
    /// An intake over `jobs` and `storage` with `rules`.
    pub fn new(jobs: Arc<dyn JobStore>, storage: Storage, rules: UploadRules) -> Intake {
        let budget_kib = usize::try_from(rules.memory_budget / 1024).unwrap_or(usize::MAX);
        Intake {
            jobs,
            storage,
            rules: Arc::new(rules),
            budget: Arc::new(Semaphore::new(budget_kib.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// The rules uploads are checked against.
    pub fn rules(&self) -> &UploadRules {
        &self.rules
    }

    /// Checks the form fields, in the contract's order.
    ///
    /// # Errors
    /// `MissingFields`, `UnknownSourceType` or `InvalidSourceId`.
    pub fn check_fields(
        &self,
        source_type: Option<&str>,
        source_id: Option<&str>,
    ) -> Result<(), SubmitError> {
        self.rules.check_fields(source_type, source_id)
    }

    /// A new upload token for `request`, valid from now.
    ///
    /// # Errors
    /// `Off` without `[auth] token_secret`; `Fields`, `Ttl` or `MaxBytes` for a request that
    /// cannot be granted.
    pub fn mint_token(&self, request: &TokenRequest) -> Result<MintedToken, TokenError> {
        self.rules.mint_token(request)
    }

    /// The grant of `token`, if it is live: signed here, unaltered, not expired (a spent
    /// single-use token is only found out by [`Intake::spend_token`]).
    ///
    /// # Errors
    /// `Invalid` or `Expired`.
    pub fn live_token(&self, token: &str) -> Result<UploadGrant, TokenError> {
        let grant = self.read_token(token)?;
        if grant.is_live(unix_now()) {
            Ok(grant)
        } else {
            Err(TokenError::Expired)
        }
    }

    /// The grant of `token` for reading its jobs' status: signed here, unaltered, and at most
    /// [`tokens::STATUS_GRACE`] past its expiry.
    ///
    /// # Errors
    /// `Invalid` or `Expired`.
    pub fn status_token(&self, token: &str) -> Result<UploadGrant, TokenError> {
        let grant = self.read_token(token)?;
        if grant.reads_status(unix_now()) {
            Ok(grant)
        } else {
            Err(TokenError::Expired)
        }
    }

    /// Without a secret no token is valid.
    fn read_token(&self, token: &str) -> Result<UploadGrant, TokenError> {
        self.rules
            .tokens
            .as_ref()
            .ok_or(TokenError::Invalid)?
            .read(token)
    }

    /// Records the use of a single-use grant (other grants pass): `Spent` when it was used
    /// before. Runs before the file is staged, so a token is spent by the upload that tried it,
    /// whatever became of that upload.
    ///
    /// # Errors
    /// `Spent`; `Queue` when the database fails.
    pub async fn spend_token(&self, grant: &UploadGrant) -> Result<(), TokenError> {
        if !grant.single_use {
            return Ok(());
        }
        let expires_ms = i64::try_from(grant.expires_at.saturating_mul(1000)).unwrap_or(i64::MAX);
        match self.jobs.spend_token(&grant.id, expires_ms).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(TokenError::Spent),
            Err(e) => Err(TokenError::Queue(e)),
        }
    }

    /// Starts streaming a file into a new staging object. Each upload in flight holds its head
    /// and one write buffer, taken from the uploads' memory budget; `at_most` (the request's
    /// declared length, when there is one) lets a small upload take only what it can fill.
    /// `max_bytes` (an upload token's) lowers `max_file_size` for this upload.
    ///
    /// # Errors
    /// `Busy` when the budget is spent, `Storage` when the store cannot take a write.
    pub fn begin_upload(
        &self,
        filename: Option<String>,
        at_most: Option<u64>,
        max_bytes: Option<u64>,
    ) -> Result<Upload, SubmitError> {
        let at_most = usize::try_from(at_most.unwrap_or(u64::MAX)).unwrap_or(usize::MAX);
        let cost = kib(HEAD_BYTES.min(at_most) + self.storage.write_buffer_bytes().min(at_most));
        let budget = Arc::clone(&self.budget)
            .try_acquire_many_owned(cost)
            .map_err(|_| SubmitError::Busy {
                retry_after: BUSY_RETRY_AFTER,
            })?;
        let job_id = JobId::generate();
        let key = self.storage.keys().staging(&job_id);
        let writer = self.storage.writer(&key).map_err(SubmitError::Storage)?;
        Ok(Upload {
            writer,
            job_id,
            key,
            max_bytes: max_bytes.map_or(self.rules.max_file_size, |max| {
                max.min(self.rules.max_file_size)
            }),
            size: 0,
            head: Vec::new(),
            filename,
            digest: None,
            budget,
        })
    }

    /// Queues an image held in memory, with the same checks as the upload route.
    ///
    /// # Errors
    /// A [`SubmitError`] naming the refusal, as the upload route would.
    pub async fn submit(
        &self,
        bytes: Bytes,
        source_type: &str,
        source_id: &str,
    ) -> Result<JobId, SubmitError> {
        self.check_fields(Some(source_type), Some(source_id))?;
        let staged = self.stage_bytes(bytes).await?;
        let queued = self
            .enqueue(
                staged,
                Some(source_type),
                Some(source_id),
                Uploader::default(),
            )
            .await?;
        Ok(queued.job_id)
    }

    /// Writes bytes the caller already holds to staging.
    async fn stage_bytes(&self, bytes: Bytes) -> Result<Staged, SubmitError> {
        let max_bytes = self.rules.max_file_size;
        if bytes.len() as u64 > max_bytes {
            return Err(SubmitError::FileTooLarge { max_bytes });
        }
        let job_id = JobId::generate();
        let key = self.storage.keys().staging(&job_id);
        let head = bytes[..bytes.len().min(HEAD_BYTES)].to_vec();
        let size = bytes.len() as u64;
        self.storage
            .put(&key, bytes)
            .await
            .map_err(SubmitError::Storage)?;
        Ok(Staged {
            job_id,
            key,
            size,
            head,
            filename: None,
            sha256: None,
            _budget: None,
        })
    }

    /// Removes a staged upload that will not become a job; the staging sweep retries on failure.
    pub async fn discard(&self, staged: &Staged) {
        if let Err(e) = self.storage.delete(&staged.key).await {
            tracing::warn!(key = %staged.key, error = %e, "could not remove a refused upload; cleanup will retry");
        }
    }

    /// Checks a staged upload and inserts its job, recording its `uploader`; on any refusal,
    /// and for a repeat under an idempotency key, the staging object is deleted.
    ///
    /// # Errors
    /// Any [`SubmitError`] but `FileTooLarge`, in the contract's order; `TooManyPending` and
    /// `IdempotencyKeyReused` last, checked in the insert itself.
    pub async fn enqueue(
        &self,
        staged: Staged,
        source_type: Option<&str>,
        source_id: Option<&str>,
        uploader: Uploader<'_>,
    ) -> Result<Queued, SubmitError> {
        let result = self
            .checked_insert(&staged, source_type, source_id, uploader)
            .await;
        if !matches!(
            result,
            Ok(Queued {
                replayed: false,
                ..
            })
        ) {
            self.discard(&staged).await;
        }
        result
    }

    async fn checked_insert(
        &self,
        staged: &Staged,
        source_type: Option<&str>,
        source_id: Option<&str>,
        uploader: Uploader<'_>,
    ) -> Result<Queued, SubmitError> {
        self.check_fields(source_type, source_id)?;
        if staged.size == 0 {
            return Err(PipelineError::Empty.into());
        }
        let mime = match pipeline::sniff::detect(&staged.head) {
            Sniffed::Image(format) => format.mime(),
            Sniffed::Other(mime) => mime,
        };
        if !self.rules.allowed_mime_types.iter().any(|m| m == mime) {
            return Err(SubmitError::TypeNotAllowed {
                mime: mime.to_owned(),
            });
        }
        if let Err(e) = pipeline::probe(&staged.head, &self.rules.limits) {
            self.probe_further(staged, e).await?;
        }
        let job = NewJob {
            id: staged.job_id.clone(),
            source_type: source_type.unwrap_or_default().to_owned(),
            source_id: source_id.unwrap_or_default().to_owned(),
            staging_key: staged.key.clone(),
            original_filename: staged.filename.clone(),
            mime_type: mime.to_owned(),
            file_size: staged.size as i64,
            max_attempts: self.rules.max_attempts,
            client: uploader.client.map(str::to_owned),
            token_id: uploader.token.cloned(),
            request_id: uploader.request_id.map(str::to_owned),
            trace_parent: uploader.trace_parent.map(str::to_owned),
            webhook_url: uploader.webhook_url.map(str::to_owned),
        };
        let now = now_ms();
        let key = uploader.idempotency.map(|i| IdempotencyKey {
            scope: i.scope.to_owned(),
            key: i.key.to_owned(),
            sha256: staged.sha256.map(hex::encode).unwrap_or_default(),
            expires_at: now.saturating_add(self.rules.idempotency_window.as_millis() as i64),
        });
        let inserted = self
            .jobs
            .insert_keyed(job, self.rules.pending_caps, key.as_ref(), now)
            .await
            .map_err(SubmitError::Queue)?;
        match inserted {
            Inserted::Job => Ok(Queued {
                job_id: staged.job_id.clone(),
                replayed: false,
            }),
            Inserted::Replay(job_id) => Ok(Queued {
                job_id,
                replayed: true,
            }),
            Inserted::Capped => Err(SubmitError::TooManyPending {
                retry_after: PENDING_RETRY_AFTER,
            }),
            Inserted::KeyReused => Err(SubmitError::IdempotencyKeyReused),
        }
    }
}

impl Intake {
    /// The head ended inside the header (large metadata before the frame header, say): probes
    /// the first [`PROBE_WINDOW`] of the staged object instead. A header that goes on past even
    /// that is accepted here and checked by the worker before any decoding.
    async fn probe_further(
        &self,
        staged: &Staged,
        first: PipelineError,
    ) -> Result<(), SubmitError> {
        let cut_short = matches!(first, PipelineError::Truncated { .. })
            && staged.size > staged.head.len() as u64;
        if !cut_short {
            return Err(first.into());
        }
        let window = staged.size.min(PROBE_WINDOW);
        let _memory = Arc::clone(&self.budget)
            .acquire_many_owned(kib(window as usize))
            .await
            .expect("the budget is never closed");
        let bytes = self
            .storage
            .get_range(&staged.key, 0..window)
            .await
            .map_err(SubmitError::Storage)?;
        match pipeline::probe(&bytes, &self.rules.limits) {
            Ok(_) => Ok(()),
            Err(PipelineError::Truncated { .. }) if staged.size > window => {
                tracing::debug!(job = %staged.job_id, "header beyond the probe window; the worker checks it");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A size limit as the contract writes it: whole MB (`maxFileSize / 1048576`), or KB below
/// one MB (an upload token's limit may be that small).
fn size_text(bytes: u64) -> String {
    if bytes >= 1_048_576 {
        format!("{}MB", bytes / 1_048_576)
    } else {
        format!("{}KB", bytes.div_ceil(1024))
    }
}

/// Seconds since the Unix epoch: the clock of token expiries.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `bytes` in KiB, rounded up: the unit of the memory budget.
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ids_follow_the_contract_pattern() {
        for ok in ["a", "user-abc123", "A.b_c-d", &"x".repeat(128)] {
            assert!(is_valid_source_id(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "ü", &"x".repeat(129), "../x"] {
            assert!(!is_valid_source_id(bad), "{bad}");
        }
    }
}
