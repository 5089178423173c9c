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
//! let app = axum::Router::new()
//!     .merge(pipeline.router())
//!     .merge(pipeline.files_router());
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
//! [`storage`] (objects); [`catalog`] reads jobs and media back for the status and media routes.
//! [`config`] and [`ids`] are plain data every module may use. Imports run one way, from the
//! facade down: `docs/architecture.md` draws the graph.

// One module lifts this: `pipeline::libwebp`, libwebp's C API, with a SAFETY note per block.
#![deny(unsafe_code)]

pub mod admin;
pub mod catalog;
#[cfg(feature = "client")]
pub mod client;
pub mod config;
pub mod http;
pub mod ids;
pub mod intake;
pub mod metrics;
pub mod moderation;
pub mod pipeline;
pub mod queue;
pub mod storage;
pub mod traces;
pub mod webhooks;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

pub use catalog::CatalogError;
pub use config::Config;
pub use ids::{JobId, MediaId, TokenId};
pub use intake::SubmitError;
pub use intake::tokens::{MintedToken, TokenError, TokenRequest, UploadGrant};
use moderation::{Moderation, ModerationError};
pub use queue::{Job, JobReport, JobStatus, Media};
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
    /// The webhook sender's HTTP client could not be built.
    #[error("webhooks: cannot build the HTTP client")]
    Webhooks(#[source] reqwest::Error),
}

impl From<CatalogError> for Error {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Queue(e) => Error::Queue(e),
            CatalogError::Storage(e) => Error::Storage(e),
        }
    }
}

/// Brings the database `config` names up to date with this version's migrations, whatever
/// `migrate_on_start` says: what `ximagepipeline migrate` runs before a deployment.
///
/// # Errors
/// When the database cannot be reached or a migration fails.
pub async fn migrate(config: &Config) -> Result<(), Error> {
    let mut database = config.database.clone();
    database.migrate_on_start = true;
    queue::connect(&database).await?;
    Ok(())
}

/// A new upload token from `config` alone, without opening the stores: what
/// `ximagepipeline token` runs. See [`ImagePipeline::mint_upload_token`].
///
/// # Errors
/// As [`ImagePipeline::mint_upload_token`].
pub fn mint_upload_token(
    config: &Config,
    request: &TokenRequest,
) -> Result<MintedToken, TokenError> {
    intake::UploadRules::from_config(config).mint_token(request)
}

/// Asks the store for a listing at start-up: a store that answers with an error (a 5xx under
/// load, as S3 gives at times) is asked again, the pause doubling from 250 ms, about 8 s in
/// all; one that still refuses then (a wrong bucket or key) is the answer. A store that does
/// not answer at all is said at once.
async fn check_storage(storage: &Storage) -> Result<(), StorageError> {
    let mut pause = std::time::Duration::from_millis(250);
    for _ in 0..5 {
        match storage.check().await {
            Err(e) if !e.is_unreachable() => {
                tracing::debug!(error = %e, "object storage refused the start-up check; asking again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            done => return done,
        }
    }
    storage.check().await
}

/// The service: it composes the intake (uploads), the catalogue (status and media) and the
/// workers' context over one job store and one object storage. Cheap to clone and share.
#[derive(Clone)]
pub struct ImagePipeline {
    config: Arc<Config>,
    intake: intake::Intake,
    catalog: catalog::Catalog,
    worker: worker::Context,
    /// The host app's check of each upload's source.
    upload_hook: Option<Arc<dyn http::hook::UploadHook>>,
    /// Every metric of this process, rendered by [`ImagePipeline::ops_router`].
    metrics: Arc<metrics::Metrics>,
}

/// `router` under the `[cors]` layer, when CORS is on.
fn with_cors(router: axum::Router, config: &Config) -> axum::Router {
    match http::cors::layer(&config.cors) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

impl ImagePipeline {
    /// Connects the database (migrating it) and the object store named by `config`.
    ///
    /// # Errors
    /// When the database or the storage cannot be opened.
    pub async fn open(config: Config) -> Result<ImagePipeline, Error> {
        let jobs = queue::connect(&config.database).await?;
        let moderation = config
            .moderation
            .as_ref()
            .map(Moderation::open)
            .transpose()?;
        let storage = Storage::open(&config)?;
        if !storage.is_local() {
            // A wrong bucket or key is said once at start-up, not on every upload. A store that
            // does not answer at all is an outage: the process starts, and jobs wait it out.
            match check_storage(&storage).await {
                Ok(()) => {}
                Err(e) if e.is_unreachable() => tracing::warn!(
                    location = %storage.location(), error = %e,
                    "object storage does not answer; starting anyway, jobs wait for it"
                ),
                Err(source) => {
                    return Err(Error::StorageUnreachable {
                        location: storage.location(),
                        source,
                    });
                }
            }
        }
        ImagePipeline::compose(config, jobs, storage, moderation)
    }

    /// Builds every part over the same stores.
    fn compose(
        config: Config,
        jobs: Arc<dyn JobStore>,
        storage: Storage,
        moderation: Option<Moderation>,
    ) -> Result<ImagePipeline, Error> {
        let rules = intake::UploadRules::from_config(&config);
        let metrics = Arc::new(metrics::Metrics::new());
        let catalog = catalog::Catalog::new(Arc::clone(&jobs), storage.clone());
        let webhooks = config
            .webhooks
            .clone()
            .map(|w| webhooks::Sender::new(Arc::clone(&jobs), catalog.clone(), w))
            .transpose()
            .map_err(Error::Webhooks)?;
        let mut worker = worker::Context::new(
            &config,
            Arc::clone(&jobs),
            storage.clone(),
            moderation,
            Arc::clone(&metrics),
        );
        worker.webhooks = webhooks;
        Ok(ImagePipeline {
            intake: intake::Intake::new(jobs, storage, rules),
            catalog,
            worker,
            config: Arc::new(config),
            upload_hook: None,
            metrics,
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the moderator with one of the host application's own, keeping the
    /// `[moderation]` settings (source types, thresholds, `fail_open`).
    pub fn with_moderator(mut self, moderator: Arc<dyn moderation::Moderator>) -> ImagePipeline {
        if let Some(config) = &self.config.moderation {
            self.worker.moderation = Some(Moderation::with(moderator, config.clone()));
        }
        self
    }

    /// Adds the host app's check of who may upload into a source (its session owning
    /// `sourceId`, say): the upload route calls it with the request's headers and extensions
    /// and the form's `sourceType` and `sourceId` before a byte of the file is staged. Those
    /// fields must then come before the file (400 `FIELDS_AFTER_FILE` otherwise).
    pub fn with_upload_hook(mut self, hook: Arc<dyn http::hook::UploadHook>) -> ImagePipeline {
        self.upload_hook = Some(hook);
        self
    }

    /// The HTTP API under the route prefix, as an axum router to merge into an app: no
    /// fallback, so it merges with the host's own routes (API.md §4b). With local storage,
    /// merge [`ImagePipeline::files_router`] too, or the media URLs have nothing behind them.
    pub fn router(&self) -> axum::Router {
        let state = http::AppState {
            intake: self.intake.clone(),
            catalog: self.catalog.clone(),
            route_prefix: self.config.route_prefix.as_str().into(),
            body_pace: http::BodyPace::for_uploads(&self.config.server),
            trusted_proxies: self.config.fairness.trusted_proxies.as_slice().into(),
            auth: self.config.auth.clone().map(Arc::new),
            upload_hook: self.upload_hook.clone(),
            metrics: Arc::clone(&self.metrics),
        };
        let openapi = http::openapi::router(&self.config.route_prefix, self.openapi());
        with_cors(http::api_router(state).merge(openapi), &self.config)
    }

    /// The OpenAPI 3.1 document of this service as configured (what `router` serves at
    /// `{prefix}/openapi.json`): every route, body, status and error code.
    pub fn openapi(&self) -> serde_json::Value {
        http::openapi::document(&http::openapi::Options {
            prefix: &self.config.route_prefix,
            source_types: self
                .config
                .source_types
                .keys()
                .map(String::as_str)
                .collect(),
            auth: self.config.auth.as_ref(),
            local_files: self.worker.storage.is_local(),
        })
    }

    /// `/`: the demo page, to try uploads in a browser (and `/demo/*`, its script and style);
    /// no fallback. `serve` mounts it when `demo_page` is on (by default with local storage
    /// and access control off). It calls the API routes like any client, so it works only
    /// where they are open to it.
    pub fn demo_router(&self) -> axum::Router {
        let page_config = http::demo::page_config(&self.config);
        http::demo::demo_router(&page_config, &self.config.public_base_url())
    }

    /// `/files/{*key}`: the stored media and originals, when storage is local (empty
    /// otherwise: a bucket serves its own). Public, key-protected or signed links only, as
    /// `[auth] files` says.
    pub fn files_router(&self) -> axum::Router {
        if self.worker.storage.is_local() {
            let storage = self.worker.storage.clone();
            with_cors(
                http::files_router(
                    storage,
                    self.config.auth.as_ref(),
                    Arc::clone(&self.metrics),
                ),
                &self.config,
            )
        } else {
            axum::Router::new()
        }
    }

    /// `/healthz` (the process answers), `/readyz` (database, storage and this process's
    /// workers can do their work; 503 naming what cannot) and `/metrics` (Prometheus text):
    /// never behind access control, no fallback.
    pub fn ops_router(&self) -> axum::Router {
        let state = http::ops::OpsState::new(
            Arc::clone(&self.worker.jobs),
            self.worker.storage.clone(),
            Arc::clone(&self.metrics),
        );
        http::ops::ops_router(state)
    }

    /// Serves [`ImagePipeline::router`], [`ImagePipeline::files_router`],
    /// [`ImagePipeline::ops_router`] and, with `demo_page`, [`ImagePipeline::demo_router`] on
    /// `listener`
    /// within the `[server]` bounds until `shutdown` completes, then lets requests in flight
    /// finish (what `ximagepipeline serve` runs).
    ///
    /// # Errors
    /// When the file-descriptor limit cannot hold the connection cap, or the listener fails.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let mut routers = vec![self.router(), self.files_router(), self.ops_router()];
        if self.config.demo_page {
            routers.push(self.demo_router());
        }
        let app = http::app(routers);
        http::serve::serve(listener, app, &self.config.server, shutdown).await
    }

    /// Starts the worker pool; it stops taking work when `shutdown` is cancelled.
    pub fn start_workers(&self, shutdown: CancellationToken) -> WorkerPool {
        WorkerPool::start(self.worker.clone(), shutdown)
    }

    /// Operator access to the raw stores and to maintenance steps, bypassing claim fencing:
    /// see [`admin`]. Not needed to serve uploads.
    pub fn admin(&self) -> admin::Admin {
        admin::Admin::new(self.worker.clone())
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
        self.intake
            .submit(bytes.into(), source_type, source_id)
            .await
    }

    /// A new upload token, for the app's backend to hand a browser: it uploads into
    /// `request`'s source only, until it expires (`[auth] token_ttl_secs` unless the request
    /// says), within its size limit and, if single-use, once. The upload route takes it as
    /// `Authorization: Bearer <token>` or as a `token` field before the file.
    ///
    /// # Errors
    /// `Off` without `[auth] token_secret`; `Fields`, `Ttl` or `MaxBytes` for a request that
    /// cannot be granted.
    pub fn mint_upload_token(&self, request: &TokenRequest) -> Result<MintedToken, TokenError> {
        self.intake.mint_token(request)
    }

    /// A job and its media; `None` for an unknown id.
    ///
    /// A settled job's report may come from memory, up to one second old: what changes a
    /// settled report is only a media deleted through another process.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn get_status(&self, id: &JobId) -> Result<Option<JobReport>, Error> {
        Ok(self.catalog.get_status(id).await?)
    }

    /// One media record.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn get_media(&self, id: &MediaId) -> Result<Option<Media>, Error> {
        Ok(self.catalog.get_media(id).await?)
    }

    /// Every media of one source, newest first. A source with many media is better walked with
    /// [`ImagePipeline::media_page`].
    ///
    /// # Errors
    /// When the database fails.
    pub async fn list_media(
        &self,
        source_type: &str,
        source_id: &str,
    ) -> Result<Vec<Media>, Error> {
        Ok(self.catalog.list_media(source_type, source_id).await?)
    }

    /// Up to `limit` media of one source, newest first, after `after` (the previous page's
    /// `next`; `None` for the first page). Pages stay whole while media are added: new ones
    /// come before every cursor.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn media_page(
        &self,
        source_type: &str,
        source_id: &str,
        after: Option<&queue::MediaCursor>,
        limit: u32,
    ) -> Result<queue::MediaPage, Error> {
        Ok(self
            .catalog
            .media_page(source_type, source_id, after, limit)
            .await?)
    }

    /// Removes every stored object of a media record, then the record; `false` when unknown.
    ///
    /// # Errors
    /// When storage or the database fails; the record stays so the delete can be repeated.
    pub async fn delete_media(&self, id: &MediaId) -> Result<bool, Error> {
        Ok(self.catalog.delete_media(id).await?)
    }

    /// Puts a FAILED job that kept its upload back to PENDING, as the operator's retry: see
    /// [`admin::Admin::requeue`]. Its status answers PENDING here at once.
    ///
    /// # Errors
    /// [`admin::RequeueError`] says why not.
    pub async fn requeue(&self, id: &JobId) -> Result<Job, admin::RequeueError> {
        let job = self.admin().requeue(id).await?;
        self.catalog.forget(id);
        Ok(job)
    }

    /// The public URL of a stored object.
    pub fn public_url(&self, key: &str) -> String {
        self.catalog.public_url(key)
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
