//! The job queue and the media records: the only module that speaks SQL.
//!
//! Job states and the transitions allowed between them:
//! ```text
//! PENDING ──claim──▶ PROCESSING ──complete──▶ COMPLETE
//!    ▲                  │  │  └────reject────▶ REJECTED
//!    └──retry / rescue──┘  └─────fail────────▶ FAILED
//! ```
//! Every transition out of PROCESSING is fenced by the claim (`locked_by`): a worker that lost
//! its claim changes nothing. Times are milliseconds since the Unix epoch and are passed in by
//! the caller, so tests move the clock instead of sleeping.

mod changes;
mod deliveries;
mod error_code;
mod migrations;
mod postgres;
mod rows;
mod sqlite;
mod statements;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::migrate::{Migrate, Migrator};
use tokio::sync::watch;

pub use changes::{Change, Changes, SQLITE_POLL};
pub use deliveries::{Attempted, Delivery, DeliveryStatus};
pub use error_code::JobErrorCode;
pub use postgres::PgJobStore;
pub use sqlite::SqliteJobStore;

use crate::config::{DatabaseConfig, DatabaseKind};
use crate::ids::{JobId, MediaId, TokenId};

/// Opens the store `config.url` names (SQLite or PostgreSQL), migrated and ready; the folder of
/// an embedded database is created first.
///
/// # Errors
/// When the folder cannot be created, the database cannot be reached or its schema cannot be
/// brought up to date.
pub async fn connect(config: &DatabaseConfig) -> Result<Arc<dyn JobStore>, QueueError> {
    Ok(match config.kind {
        DatabaseKind::Sqlite => {
            create_folder_of(&config.url)?;
            Arc::new(SqliteJobStore::connect(config).await?)
        }
        DatabaseKind::Postgres => Arc::new(PgJobStore::connect(config).await?),
    })
}

/// Creates the folder a `sqlite://PATH` URL points into, so a fresh `--data-dir` just works.
fn create_folder_of(url: &str) -> Result<(), QueueError> {
    let Some(file) = url.strip_prefix("sqlite://") else {
        return Ok(());
    };
    match std::path::Path::new(file).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|source| QueueError::Folder {
                path: parent.to_owned(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Applies pending migrations, or, when `migrate` is off, refuses a schema that is behind.
/// On PostgreSQL, sqlx holds an advisory lock while migrating, so processes starting together
/// do not race.
async fn prepare_schema<DB>(
    pool: &sqlx::Pool<DB>,
    migrator: &Migrator,
    migrate: bool,
) -> Result<(), QueueError>
where
    DB: sqlx::Database,
    DB::Connection: Migrate,
{
    if migrate {
        return Ok(migrator.run(pool).await?);
    }
    schema_current(&mut *pool.acquire().await?, migrator).await
}

/// `NotMigrated` with the versions of this build that `conn`'s database lacks.
async fn schema_current<C: Migrate>(conn: &mut C, migrator: &Migrator) -> Result<(), QueueError> {
    // A missing migrations table reads as "nothing applied".
    let applied = conn
        .list_applied_migrations(&migrator.table_name)
        .await
        .unwrap_or_default();
    let missing: Vec<i64> = migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.iter().any(|a| a.version == *v))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(QueueError::NotMigrated(missing))
    }
}

/// Closes a pooled connection instead of returning it when the transaction it ran failed:
/// its state is then unknown. After SQLITE_FULL, SQLite has rolled back by itself while sqlx
/// still counts an open transaction, and every later BEGIN on that connection fails; a
/// connection cut mid-transaction is no better. A fresh one is opened when needed.
fn close_if_failed<DB: sqlx::Database, T, E>(
    conn: &mut sqlx::pool::PoolConnection<DB>,
    result: &Result<T, E>,
) {
    if result.is_err() {
        conn.close_on_drop();
    }
}

/// Takes a connection for an HTTP request: waits at most `patience` (the pool's own timeout is
/// the workers' longer one), then fails as a pool time-out, so the client hears 503 at once
/// while the database is away. Only the wait for the connection is bounded: a statement, once
/// sent, is never abandoned half-way.
async fn acquire_within<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    patience: std::time::Duration,
) -> Result<sqlx::pool::PoolConnection<DB>, QueueError> {
    match tokio::time::timeout(patience, pool.acquire()).await {
        Ok(conn) => Ok(conn?),
        Err(_) => Err(QueueError::Database(sqlx::Error::PoolTimedOut)),
    }
}

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// Where a job is in its life; stored as the upper-case contract word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    /// Waiting for a worker (also while waiting for a retry's `run_at`).
    Pending,
    /// Claimed by a worker (`locked_by`) that refreshes `locked_at`.
    Processing,
    /// Done; `media_id` names the result.
    Complete,
    /// Refused by content moderation.
    Rejected,
    /// Given up; `error_code` and `error` say why.
    Failed,
}

impl JobStatus {
    /// The stored and displayed word.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Processing => "PROCESSING",
            JobStatus::Complete => "COMPLETE",
            JobStatus::Rejected => "REJECTED",
            JobStatus::Failed => "FAILED",
        }
    }

    /// Reads a stored word.
    pub fn parse(s: &str) -> Option<JobStatus> {
        [
            JobStatus::Pending,
            JobStatus::Processing,
            JobStatus::Complete,
            JobStatus::Rejected,
            JobStatus::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Complete | JobStatus::Rejected | JobStatus::Failed
        )
    }
}

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id (also names the staging object).
    pub id: JobId,
    /// The upload's `sourceType`.
    pub source_type: String,
    /// The upload's `sourceId`.
    pub source_id: String,
    /// Key of the staged upload.
    pub staging_key: String,
    /// File name the client sent, if any (informational only).
    pub original_filename: Option<String>,
    /// MIME type sniffed from the bytes.
    pub mime_type: String,
    /// Size of the upload in bytes.
    pub file_size: i64,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// Who uploaded it (an IP address), when known; counted by [`PendingCaps::per_client`].
    pub client: Option<String>,
    /// The upload token it came with, if any: that token may read its status.
    pub token_id: Option<TokenId>,
    /// The id of the request that uploaded it, carried into the worker's logs.
    pub request_id: Option<String>,
    /// The W3C `traceparent` of the upload's span (the `otel` feature): the worker's spans
    /// join that trace.
    pub trace_parent: Option<String>,
    /// Where its end is sent: its upload's `callbackUrl`, `""` for `[webhooks] url`, `None`
    /// for nowhere.
    pub webhook_url: Option<String>,
}

/// An upload's `Idempotency-Key`, recorded with the job it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Whose key it is (its API key or upload token; empty when the API is open): the same key
    /// of two callers names two uploads.
    pub scope: String,
    /// The key as the client sent it.
    pub key: String,
    /// SHA-256 of the uploaded file, in hexadecimal.
    pub sha256: String,
    /// Until when a repeat is answered with this upload's job.
    pub expires_at: Millis,
}

/// What [`JobStore::insert_keyed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The job was inserted (and its key recorded).
    Job,
    /// The source or the client has too many pending jobs: nothing was written.
    Capped,
    /// The key holds this earlier job of the same source and file: nothing was written.
    Replay(JobId),
    /// The key holds an upload of another source or file: nothing was written.
    KeyReused,
}

/// How many pending jobs (PENDING or PROCESSING) one source and one client may have before
/// [`JobStore::insert_capped`] refuses another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCaps {
    /// Per `sourceType` + `sourceId`.
    pub source: u64,
    /// Per client (jobs with no client are not counted).
    pub client: u64,
}

impl PendingCaps {
    /// No cap at all.
    pub const NONE: PendingCaps = PendingCaps {
        source: u64::MAX,
        client: u64::MAX,
    };

    fn per_source(self) -> i64 {
        i64::try_from(self.source).unwrap_or(i64::MAX)
    }

    fn per_client(self) -> i64 {
        i64::try_from(self.client).unwrap_or(i64::MAX)
    }
}

/// How a job ends FAILED: the code and safe sentence shown, and whether its upload stays.
#[derive(Debug, Clone, Copy)]
pub struct Failed<'a> {
    /// The contract's code.
    pub code: JobErrorCode,
    /// The sentence shown as the job's `error`.
    pub error: &'a str,
    /// Keep the staged upload: the reason may pass, so an operator may run the job again.
    pub upload_kept: bool,
}

/// A job row.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Where it is.
    pub status: JobStatus,
    /// The upload's `sourceType`.
    pub source_type: String,
    /// The upload's `sourceId`.
    pub source_id: String,
    /// Key of the staged upload.
    pub staging_key: String,
    /// File name the client sent.
    pub original_filename: Option<String>,
    /// MIME type sniffed at upload.
    pub mime_type: String,
    /// Upload size in bytes.
    pub file_size: i64,
    /// The media made, once COMPLETE.
    pub media_id: Option<MediaId>,
    /// The media id the latest attempt stored its objects under (see [`JobStore::start_attempt`]).
    pub attempt_media_id: Option<MediaId>,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Why the last attempt failed: a sentence safe to show (never paths, hosts or debug text).
    pub error: Option<String>,
    /// The code of the last failure; always set on a FAILED job.
    pub error_code: Option<JobErrorCode>,
    /// Who uploaded it, when known.
    pub client: Option<String>,
    /// Moderation verdict word, when moderation ran.
    pub moderation_result: Option<String>,
    /// Moderation details (flags, confidence, scores).
    pub moderation_details: Option<serde_json::Value>,
    /// The worker holding the claim.
    pub locked_by: Option<String>,
    /// The claim's last heartbeat.
    pub locked_at: Option<Millis>,
    /// Not to be claimed before this time (retry backoff).
    pub run_at: Millis,
    /// When the job was created.
    pub created_at: Millis,
    /// When the job last changed.
    pub updated_at: Millis,
    /// Since when the job has been waiting out a storage or database outage (its attempts are
    /// not used meanwhile); `None` when it is not.
    pub outage_since: Option<Millis>,
    /// Whether the staged upload is kept although the job is FAILED (its reason may pass), so
    /// [`JobStore::requeue`] can run it again.
    pub upload_kept: bool,
    /// The upload token it came with, if any.
    pub token_id: Option<TokenId>,
    /// The id of the request that uploaded it.
    pub request_id: Option<String>,
    /// The W3C `traceparent` of the upload's span, if it was traced.
    pub trace_parent: Option<String>,
    /// Where its end is sent (see [`NewJob::webhook_url`]).
    pub webhook_url: Option<String>,
}

impl Job {
    /// Whether the job still needs its staged upload: while it may run, and after a failure
    /// that may pass.
    pub fn holds_upload(&self) -> bool {
        !self.status.is_terminal() || self.upload_kept
    }

    /// A job of `status` on its first attempt, for unit tests of what reads jobs.
    #[cfg(test)]
    pub(crate) fn example(status: JobStatus) -> Job {
        Job {
            id: JobId::generate(),
            status,
            source_type: "avatar".into(),
            source_id: "u1".into(),
            staging_key: "staging/x".into(),
            original_filename: None,
            mime_type: "image/png".into(),
            file_size: 1,
            media_id: None,
            attempt_media_id: None,
            attempts: 1,
            max_attempts: 3,
            error: None,
            error_code: None,
            client: None,
            moderation_result: None,
            moderation_details: None,
            locked_by: None,
            locked_at: None,
            run_at: 0,
            created_at: 0,
            updated_at: 0,
            outage_since: None,
            upload_kept: false,
            token_id: None,
            request_id: None,
            trace_parent: None,
            webhook_url: None,
        }
    }
}

/// One stored variant of a media record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredVariant {
    /// Object key.
    pub key: String,
    /// Pixel width.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
}

/// Where a page of a source's media goes on from: after the media with this creation time and
/// id, newest first. Clients see it as an opaque string (`{created_at}.{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaCursor {
    /// The last listed media's `created_at`.
    pub created_at: Millis,
    /// The last listed media's id.
    pub id: MediaId,
}

impl MediaCursor {
    /// The position just after `media`.
    pub fn after(media: &Media) -> MediaCursor {
        MediaCursor {
            created_at: media.created_at,
            id: media.id.clone(),
        }
    }

    /// Reads a cursor this service wrote; `None` for anything else.
    pub fn parse(text: &str) -> Option<MediaCursor> {
        let (created_at, id) = text.split_once('.')?;
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '_';
        if id.is_empty() || id.len() > 64 || !id.chars().all(plain) {
            return None;
        }
        Some(MediaCursor {
            created_at: created_at.parse().ok()?,
            id: MediaId::from_string(id.to_owned()),
        })
    }
}

impl std::fmt::Display for MediaCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.created_at, self.id)
    }
}

/// One page of a source's media, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPage {
    /// The page's media.
    pub media: Vec<Media>,
    /// Where the next page begins; `None` on the last.
    pub next: Option<MediaCursor>,
}

/// A media record: what one completed job produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    /// Its id.
    pub id: MediaId,
    /// The job that made it.
    pub job_id: JobId,
    /// The upload's `sourceType`.
    pub source_type: String,
    /// The upload's `sourceId`.
    pub source_id: String,
    /// Variant name → stored object, in the source type's order.
    pub variants: Vec<(String, StoredVariant)>,
    /// Key of the stripped original, when kept.
    pub original_key: Option<String>,
    /// Displayed width (after orientation).
    pub width: u32,
    /// Displayed height (after orientation).
    pub height: u32,
    /// `W:H` reduced by their gcd.
    pub aspect_ratio: String,
    /// Blurhash placeholder.
    pub blurhash: String,
    /// Input format in lower case: `jpeg`, `png`, `webp`, `gif`, ...
    pub format: String,
    /// When it was recorded.
    pub created_at: Millis,
}

impl Media {
    /// Every object key the record owns.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.variants
            .iter()
            .map(|(_, v)| v.key.as_str())
            .chain(self.original_key.as_deref())
    }
}

/// How many jobs are in each state, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Jobs per state (states without jobs are absent).
    pub by_status: Vec<(JobStatus, u64)>,
    /// When the oldest PENDING job was created.
    pub oldest_pending: Option<Millis>,
}

/// A job together with the media it produced (once COMPLETE): what the status route shows.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReport {
    /// The job row.
    pub job: Job,
    /// Its media, when the job is COMPLETE and the media was not deleted since.
    pub media: Option<Media>,
}

/// Why a queue operation failed. All of these are transient from a job's point of view.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The database refused or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `migrate_on_start` is off and these migrations have not been applied.
    #[error(
        "the database schema is behind (migrations {0:?} not applied): run `ximagepipeline migrate`"
    )]
    NotMigrated(Vec<i64>),
    /// A row held a value the code cannot read.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The folder of the embedded database could not be created.
    #[error("cannot create database folder {path}: {source}")]
    Folder {
        /// The folder.
        path: std::path::PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
}

impl QueueError {
    /// Whether the database is unavailable (unreachable, restarting, out of space or locked)
    /// rather than refusing this request: the same request may succeed later.
    pub fn is_outage(&self) -> bool {
        use sqlx::Error as E;
        match self {
            QueueError::Database(
                E::Io(_)
                | E::Tls(_)
                | E::Protocol(_)
                | E::PoolTimedOut
                | E::PoolClosed
                | E::WorkerCrashed
                | E::BeginFailed,
            )
            | QueueError::Folder { .. } => true,
            QueueError::Database(E::Database(e)) => e.code().is_some_and(|c| outage_code(&c)),
            _ => false,
        }
    }
}

/// Whether a database error code means "unavailable": SQLite's busy, locked, out of memory,
/// read-only, I/O, full and cannot-open results (numeric codes, extended ones included), or
/// PostgreSQL's SQLSTATE classes 08 (connection), 40 (transaction rolled back), 53 (out of
/// resources), 57 (shutting down, starting up) and 58 (system error).
fn outage_code(code: &str) -> bool {
    // A SQLSTATE has five characters; SQLite's extended codes have at most four digits.
    if code.len() == 5 {
        return ["08", "40", "53", "57", "58"]
            .iter()
            .any(|class| code.starts_with(class));
    }
    code.parse::<u32>()
        .is_ok_and(|sqlite| matches!(sqlite & 0xff, 5..=8 | 10 | 13 | 14))
}

/// The job and media store. Implementations must behave alike (one test suite covers them all).
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Inserts a PENDING job due now and wakes idle workers.
    async fn insert(&self, job: NewJob, now: Millis) -> Result<(), QueueError> {
        self.insert_capped(job, PendingCaps::NONE, now).await?;
        Ok(())
    }

    /// Inserts a PENDING job due now and wakes idle workers, unless its source or its client
    /// already has `caps` pending jobs: then `false` and nothing is written. The count and the
    /// insert are one statement (see `statements::INSERT_JOB` for how exactly each engine
    /// holds the caps).
    async fn insert_capped(
        &self,
        job: NewJob,
        caps: PendingCaps,
        now: Millis,
    ) -> Result<bool, QueueError> {
        match self.insert_keyed(job, caps, None, now).await? {
            Inserted::Job => Ok(true),
            Inserted::Capped => Ok(false),
            other => Err(QueueError::Corrupt(format!("{other:?} without a key"))),
        }
    }

    /// [`insert_capped`](JobStore::insert_capped) under an upload's idempotency key, in one
    /// transaction: the key is recorded with the job, or, when a live record holds it, nothing
    /// is written and the answer is the earlier job (same source and file) or
    /// [`Inserted::KeyReused`]. A capped insert records no key.
    async fn insert_keyed(
        &self,
        job: NewJob,
        caps: PendingCaps,
        key: Option<&IdempotencyKey>,
        now: Millis,
    ) -> Result<Inserted, QueueError>;

    /// The job, if it exists.
    async fn get(&self, id: &JobId) -> Result<Option<Job>, QueueError>;

    /// Claims the oldest due PENDING job for `worker`: PROCESSING, `attempts + 1`, locked now.
    async fn claim(&self, worker: &str, now: Millis) -> Result<Option<Job>, QueueError>;

    /// Records the media id this attempt will store objects under, while `worker` holds the
    /// claim; a later attempt finds it in [`Job::attempt_media_id`] and removes those objects.
    async fn start_attempt(
        &self,
        id: &JobId,
        worker: &str,
        media_id: &MediaId,
    ) -> Result<bool, QueueError>;

    /// Refreshes the claim; `false` when `worker` no longer holds it.
    async fn heartbeat(&self, id: &JobId, worker: &str, now: Millis) -> Result<bool, QueueError>;

    /// Records `media` and marks the job COMPLETE, in one transaction, only while `worker`
    /// holds the claim. `false` (and nothing written) when the claim was lost.
    async fn complete(
        &self,
        id: &JobId,
        worker: &str,
        media: &Media,
        now: Millis,
    ) -> Result<bool, QueueError>;

    /// Records the moderation verdict of the attempt in hand (`result`, e.g. `APPROVED`, and
    /// `details`), only while `worker` holds the claim.
    async fn record_moderation(
        &self,
        id: &JobId,
        worker: &str,
        result: &str,
        details: &serde_json::Value,
    ) -> Result<bool, QueueError>;

    /// Ends the job REJECTED by moderation with `details`, only while `worker` holds the claim.
    async fn reject(
        &self,
        id: &JobId,
        worker: &str,
        details: &serde_json::Value,
        now: Millis,
    ) -> Result<bool, QueueError>;

    /// Ends the job FAILED with `code` and the safe sentence `error`, only while `worker` holds
    /// the claim. `upload_kept` records that the staged upload stays for a [`JobStore::requeue`].
    async fn fail(
        &self,
        id: &JobId,
        worker: &str,
        failed: Failed<'_>,
        now: Millis,
    ) -> Result<bool, QueueError>;

    /// Puts the job back to PENDING, due at `run_at`, keeping `code` and `error` as the last
    /// failure.
    async fn retry(
        &self,
        id: &JobId,
        worker: &str,
        code: JobErrorCode,
        error: &str,
        run_at: Millis,
        now: Millis,
    ) -> Result<bool, QueueError>;

    /// Puts the job back to PENDING, due at `run_at`, without counting the attempt: storage or
    /// the database was unavailable. The first such deferral records `outage_since`; a retry
    /// or an ending clears it.
    async fn defer(
        &self,
        id: &JobId,
        worker: &str,
        code: JobErrorCode,
        error: &str,
        run_at: Millis,
        now: Millis,
    ) -> Result<bool, QueueError>;

    /// Puts a FAILED job that kept its upload back to PENDING, due now, with its attempts and
    /// outage reset (an operator's retry). `None`, and nothing written, for any other job.
    async fn requeue(&self, id: &JobId, now: Millis) -> Result<Option<Job>, QueueError>;

    /// Hands back the jobs `worker` holds, due at once and with their attempt given back: a
    /// shutdown cut them off. Returns how many.
    async fn release(&self, worker: &str, now: Millis) -> Result<u64, QueueError>;

    /// Takes back claims whose heartbeat is older than `stale_before`: PENDING again, or FAILED
    /// when no attempt is left. Returns the jobs taken back, as they are now (the caller removes
    /// what a FAILED one's dead attempt stored).
    async fn rescue_stale(&self, stale_before: Millis, now: Millis)
    -> Result<Vec<Job>, QueueError>;

    /// The earliest `run_at` of a PENDING job, to sleep exactly until it is due.
    async fn next_run_at(&self) -> Result<Option<Millis>, QueueError>;

    /// A media record by id.
    async fn get_media(&self, id: &MediaId) -> Result<Option<Media>, QueueError>;

    /// The media of one source, newest first.
    async fn list_media(
        &self,
        source_type: &str,
        source_id: &str,
        after: Option<&MediaCursor>,
        limit: u32,
    ) -> Result<Vec<Media>, QueueError>;

    /// Deletes a media record; `false` when it did not exist.
    async fn delete_media(&self, id: &MediaId) -> Result<bool, QueueError>;

    /// Records that single-use upload token `id`, valid until `expires_at`, has been used:
    /// `false` (and nothing written) when it had been before. One statement, so two uploads
    /// racing with one token cannot both pass.
    async fn spend_token(&self, id: &TokenId, expires_at: Millis) -> Result<bool, QueueError>;

    /// Checks that the database takes writes and has every migration of this build (the
    /// readiness check): one upsert of a single row.
    async fn check_ready(&self, now: Millis) -> Result<(), QueueError>;

    /// How many jobs are in each state, and the age of the oldest pending one (metrics).
    async fn count_jobs(&self) -> Result<JobCounts, QueueError>;

    /// At most `limit` jobs, newest first, of `status` (any when `None`): the operator's list.
    async fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: u32,
    ) -> Result<Vec<Job>, QueueError>;

    /// Removes ended jobs (COMPLETE, REJECTED, FAILED) last changed before `before`, and the
    /// settled webhook deliveries of ends before it; their media stay. Returns how many jobs
    /// went.
    async fn forget_ended_jobs(&self, before: Millis) -> Result<u64, QueueError>;

    /// Housekeeping of the store itself, run by the maintenance loop every sweep interval:
    /// forgets spent tokens past their expiry (and SQLite checkpoints and truncates its
    /// write-ahead log).
    async fn tidy(&self, now: Millis) -> Result<(), QueueError>;

    /// Leases the earliest due webhook delivery until `lease_until`, counting the attempt;
    /// `None` when nothing is due.
    async fn claim_delivery(
        &self,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Option<Delivery>, QueueError>;

    /// Records how the attempt of a `claimed` delivery (as [`claim_delivery`] gave it)
    /// ended; `false` (nothing written) when it has been settled or claimed again since.
    ///
    /// [`claim_delivery`]: JobStore::claim_delivery
    async fn settle_delivery(
        &self,
        claimed: &Delivery,
        outcome: &Attempted,
        now: Millis,
    ) -> Result<bool, QueueError>;

    /// The newest `limit` deliveries, of one job or of all.
    async fn list_deliveries(
        &self,
        job: Option<&JobId>,
        limit: u32,
    ) -> Result<Vec<Delivery>, QueueError>;

    /// Makes a delivery due again now with its attempts reset (an operator's resend); `false`
    /// for an unknown id.
    async fn resend_delivery(&self, id: &str, now: Millis) -> Result<bool, QueueError>;

    /// When the earliest pending delivery is due.
    async fn next_delivery_at(&self) -> Result<Option<Millis>, QueueError>;

    /// The statuses of those of `ids` that exist, in one query however many: a waiter's
    /// check of what it watches after [`Change::Any`].
    async fn statuses(&self, ids: &[JobId]) -> Result<Vec<(JobId, JobStatus)>, QueueError>;

    /// A receiver whose value changes whenever a job may have become claimable.
    fn wake_ups(&self) -> watch::Receiver<u64>;

    /// The feed of jobs' status changes, whichever process made them.
    fn changes(&self) -> &Changes;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_codes_of_both_engines() {
        // SQLITE_FULL, SQLITE_BUSY_SNAPSHOT (extended), SQLITE_IOERR_WRITE (extended).
        for code in ["13", "517", "778", "08006", "57P01", "53100", "40001"] {
            assert!(outage_code(code), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE, unique_violation, syntax_error.
        for code in ["2067", "23505", "42601"] {
            assert!(!outage_code(code), "{code}");
        }
    }

    #[test]
    fn status_words_round_trip() {
        for st in ["PENDING", "PROCESSING", "COMPLETE", "REJECTED", "FAILED"] {
            assert_eq!(JobStatus::parse(st).unwrap().as_str(), st);
        }
        assert_eq!(JobStatus::parse("pending"), None);
    }
}
