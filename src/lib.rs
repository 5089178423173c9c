//! ximagepipeline: accept an image upload, answer at once with a job id, and let a background
//! worker turn it into resized WebP variants, a blurhash and a metadata-free original.
//!
//! The library is what the `ximagepipeline` binary runs; a host application embeds the same
//! thing: open an [`ImagePipeline`], merge its [`ImagePipeline::router`] into an axum app, and
//! start its workers.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use ximagepipeline::{Config, ImagePipeline};
//! use tokio_util::sync::CancellationToken;
//!
//! let pipeline = ImagePipeline::open(Config::embedded("./data")?).await?;
//! let shutdown = CancellationToken::new();
//! let workers = pipeline.start_workers(shutdown.clone());
//! let app = axum::Router::new().merge(pipeline.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(async move { shutdown.cancelled().await })
//!     .await?;
//! workers.join().await;
//! # Ok(()) }
//! ```
//!
//! Modules, in the order data flows: [`http`] (routes) → [`intake`] (checks, staging, job) →
//! [`queue`] (jobs and media rows) → [`worker`] (claims, retries) → [`pipeline`] (pixels) →
//! [`storage`] (objects). [`config`] feeds them all.

pub mod config;
pub mod http;
pub mod intake;
pub mod moderation;
pub mod pipeline;
pub mod queue;
mod settled;
pub mod storage;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use intake::SubmitError;
use moderation::{Moderation, ModerationError};
pub use queue::{Job, JobId, JobStatus, Media, MediaId};
use queue::{JobStore, QueueError};
use storage::{Storage, StorageError};
pub use worker::WorkerPool;

/// Why an operation of the library API failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The job and media database failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Object storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The configured moderator could not be set up (e.g. the model file is missing).
    #[error("content moderation: {0}")]
    Moderation(#[from] ModerationError),
    /// The object store refused or could not be reached at start-up.
    #[error("cannot use object storage {location}")]
    StorageUnreachable {
        /// The configured location, e.g. `s3://bucket`.
        location: String,
        /// What the store said.
        #[source]
        source: StorageError,
    },
    /// The folder of the embedded database could not be created.
    #[error("cannot create database folder {path}: {source}")]
    DatabaseFolder {
        /// The folder.
        path: std::path::PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
}

/// Brings the database `config` names up to date with this version's migrations, whatever
/// `migrate_on_start` says: what `ximagepipeline migrate` runs before a deployment.
///
/// # Errors
/// When the database cannot be reached or a migration fails.
pub async fn migrate(config: &Config) -> Result<(), Error> {
    let mut database = config.database.clone();
    database.migrate_on_start = true;
    open_jobs(&database).await?;
    Ok(())
}

/// Connects the job store, creating the folder of an embedded database first.
async fn open_jobs(database: &config::DatabaseConfig) -> Result<Arc<dyn JobStore>, Error> {
    if let Some(file) = database.url.strip_prefix("sqlite://")
        && let Some(parent) = std::path::Path::new(file).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| Error::DatabaseFolder {
            path: parent.to_owned(),
            source,
        })?;
    }
    Ok(queue::connect(database).await?)
}

/// A job together with the media it produced (once COMPLETE).
#[derive(Debug, Clone, PartialEq)]
pub struct JobReport {
    /// The job row.
    pub job: Job,
    /// Its media, when the job is COMPLETE and the media was not deleted since.
    pub media: Option<Media>,
}

/// The service: configuration, job store and object storage, cheap to clone and share.
#[derive(Clone)]
pub struct ImagePipeline {
    config: Arc<Config>,
    jobs: Arc<dyn JobStore>,
    storage: Storage,
    moderation: Option<Moderation>,
    settled: Arc<settled::SettledJobs>,
}

impl ImagePipeline {
    /// Connects the database (migrating it) and the object store named by `config`.
    ///
    /// # Errors
    /// When the database or the storage cannot be opened.
    pub async fn open(config: Config) -> Result<ImagePipeline, Error> {
        let jobs = open_jobs(&config.database).await?;
        let moderation = config
            .moderation
            .as_ref()
            .map(Moderation::open)
            .transpose()?;
        let storage = Storage::open(&config)?;
        if !storage.is_local() {
            // A wrong bucket, endpoint or key is said once at start-up, not on every upload.
            storage
                .check()
                .await
                .map_err(|source| Error::StorageUnreachable {
                    location: storage.location(),
                    source,
                })?;
        }
        Ok(ImagePipeline {
            config: Arc::new(config),
            jobs,
            storage,
            moderation,
            settled: Arc::default(),
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The job and media store.
    pub fn jobs(&self) -> &dyn JobStore {
        self.jobs.as_ref()
    }

    /// The object storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The content moderation stage, when configured.
    pub fn moderation(&self) -> Option<&Moderation> {
        self.moderation.as_ref()
    }

    /// Replaces the moderator with one of the host application's own, keeping the
    /// `[moderation]` settings (source types, thresholds, `fail_open`).
    pub fn with_moderator(mut self, moderator: Arc<dyn moderation::Moderator>) -> ImagePipeline {
        if let Some(config) = &self.config.moderation {
            self.moderation = Some(Moderation::with(moderator, config.clone()));
        }
        self
    }

    /// The HTTP API (and `/files` for local storage) as an axum router to merge into an app.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// Starts the worker pool; it stops taking work when `shutdown` is cancelled.
    pub fn start_workers(&self, shutdown: CancellationToken) -> WorkerPool {
        WorkerPool::start(self.clone(), shutdown)
    }

    /// Queues an image held in memory, with the same checks as the upload route.
    ///
    /// # Errors
    /// A [`SubmitError`] naming the refusal, as the upload route would.
    pub async fn submit(
        &self,
        bytes: impl Into<Bytes>,
        source_type: &str,
        source_id: &str,
    ) -> Result<JobId, SubmitError> {
        intake::check_fields(self, Some(source_type), Some(source_id))?;
        let staged = intake::stage_bytes(self, bytes.into()).await?;
        intake::enqueue(self, staged, Some(source_type), Some(source_id)).await
    }

    /// A job and its media; `None` for an unknown id.
    ///
    /// A settled job's report may come from memory, up to one second old (`settled`): what
    /// changes a settled report is only a media deleted through another process.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn get_status(&self, id: &JobId) -> Result<Option<JobReport>, Error> {
        if let Some(report) = self.settled.get(id) {
            return Ok(Some(JobReport::clone(&report)));
        }
        let Some(job) = self.jobs.get(id).await? else {
            return Ok(None);
        };
        let media = match &job.media_id {
            Some(media_id) => self.jobs.get_media(media_id).await?,
            None => None,
        };
        let report = JobReport { job, media };
        self.settled.remember(&report);
        Ok(Some(report))
    }

    /// One media record.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn get_media(&self, id: &MediaId) -> Result<Option<Media>, Error> {
        Ok(self.jobs.get_media(id).await?)
    }

    /// The media of one source, newest first.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn list_media(
        &self,
        source_type: &str,
        source_id: &str,
    ) -> Result<Vec<Media>, Error> {
        Ok(self.jobs.list_media(source_type, source_id).await?)
    }

    /// Removes every stored object of a media record, then the record; `false` when unknown.
    ///
    /// # Errors
    /// When storage or the database fails; the record stays so the delete can be repeated.
    pub async fn delete_media(&self, id: &MediaId) -> Result<bool, Error> {
        let Some(media) = self.jobs.get_media(id).await? else {
            return Ok(false);
        };
        futures::future::try_join_all(media.keys().map(|key| self.storage.delete(key))).await?;
        let deleted = self.jobs.delete_media(id).await?;
        self.settled.forget(&media.job_id);
        Ok(deleted)
    }

    /// The public URL of a stored object.
    pub fn public_url(&self, key: &str) -> String {
        self.storage.public_url(key)
    }

    /// Every configured variant (defaults merged with the user's).
    pub fn variants(&self) -> &BTreeMap<String, pipeline::VariantSpec> {
        &self.config.variants
    }

    /// Every configured source type.
    pub fn source_types(&self) -> &BTreeMap<String, config::SourceType> {
        &self.config.source_types
    }

    /// Source type → the names of its variants.
    pub fn variant_presets(&self) -> BTreeMap<String, Vec<String>> {
        self.config
            .source_types
            .iter()
            .map(|(name, st)| (name.clone(), st.variants.clone()))
            .collect()
    }
}
