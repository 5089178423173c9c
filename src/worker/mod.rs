//! The worker pool: `concurrency` claim loops plus one maintenance loop, stopped together.
//!
//! Workers see only their [`Context`]: the job store, the object storage, the moderation stage,
//! their settings, the pixel limits and what each source type makes. Files: `claim` (the claim
//! loop, the heartbeat beside each job, recording the outcome), `attempt` (one attempt: read,
//! process, moderate, store), `failure` (how an attempt can fail), `moderate`, `rescue` (stale
//! claims and orphaned staging objects) and `retry` (backoff as a pure function).
//!
//! Shutdown: the token stops new claims; jobs in hand finish, bounded by
//! `worker.shutdown_timeout`; a job cut off there is handed back, due at once, its attempt not
//! counted (or, if the database cannot be reached then, taken back later as a stale claim).

mod attempt;
pub(crate) mod claim;
mod failure;
mod moderate;
pub(crate) mod rescue;
pub mod retry;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use failure::{Failure, Fault};

use crate::config::{Config, WorkerConfig};
use crate::metrics::Metrics;
use crate::moderation::Moderation;
use crate::pipeline::{Limits, OutputSpec};
use crate::queue::{JobStore, QueueError, now_ms};
use crate::storage::Storage;
use crate::webhooks;

/// What workers need to run jobs, and nothing more. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    /// The job and media store.
    pub jobs: Arc<dyn JobStore>,
    /// Where uploads wait and results go.
    pub storage: Storage,
    /// The moderation stage, when configured.
    pub moderation: Option<Moderation>,
    /// Concurrency, attempts, intervals, time limits.
    pub settings: WorkerConfig,
    /// Pixel limits, checked again before decoding.
    pub limits: Limits,
    /// Source type → what to make for it.
    pub outputs: Arc<BTreeMap<String, OutputSpec>>,
    /// Where stage durations, outcomes and busy workers are counted.
    pub metrics: Arc<Metrics>,
    /// Sends jobs' ends to `[webhooks]` receivers, when configured: the processes that run
    /// workers run it.
    pub webhooks: Option<webhooks::Sender>,
}

impl Context {
    /// The context `config` describes, over `jobs` and `storage`.
    pub fn new(
        config: &Config,
        jobs: Arc<dyn JobStore>,
        storage: Storage,
        moderation: Option<Moderation>,
        metrics: Arc<Metrics>,
    ) -> Context {
        let outputs = config
            .source_types
            .keys()
            .filter_map(|name| Some((name.clone(), config.output_spec(name)?)))
            .collect();
        Context {
            jobs,
            storage,
            moderation,
            settings: config.worker.clone(),
            limits: config.limits,
            outputs: Arc::new(outputs),
            metrics,
            webhooks: None,
        }
    }
}

/// How long handing back the jobs cut off by the shutdown timeout may take.
const RELEASE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// Running workers of one process.
pub struct WorkerPool {
    tasks: JoinSet<()>,
    /// The claim loops' names, to hand back their jobs when shutdown cuts them off.
    workers: Vec<String>,
    jobs: Arc<dyn JobStore>,
    shutdown: CancellationToken,
    timeout: std::time::Duration,
    /// How many claim loops are waiting for work.
    idle: watch::Receiver<usize>,
    concurrency: usize,
}

impl WorkerPool {
    /// Starts the claim loops and the maintenance loop.
    pub fn start(context: Context, shutdown: CancellationToken) -> WorkerPool {
        let settings = context.settings.clone();
        let process = format!("{}-{}", std::process::id(), &cuid2::create_id()[..8]);
        let mut tasks = JoinSet::new();
        let idle = Arc::new(watch::Sender::new(0));
        let workers: Vec<String> = (0..settings.concurrency)
            .map(|n| format!("{process}-{n}"))
            .collect();
        for worker in &workers {
            let idle = Arc::clone(&idle);
            tasks.spawn(claim::run(
                context.clone(),
                worker.clone(),
                shutdown.clone(),
                idle,
            ));
        }
        let jobs = Arc::clone(&context.jobs);
        if let Some(sender) = context.webhooks.clone() {
            tasks.spawn(sender.run(shutdown.clone()));
        }
        tasks.spawn(maintain(context, shutdown.clone()));
        tracing::info!(concurrency = settings.concurrency, "workers started");
        WorkerPool {
            tasks,
            workers,
            jobs,
            shutdown,
            timeout: settings.shutdown_timeout,
            idle: idle.subscribe(),
            concurrency: settings.concurrency,
        }
    }

    /// Resolves once every claim loop has found no due job and is waiting to be woken: from
    /// then on only a wake-up (or the idle poll) starts work.
    pub async fn until_idle(&self) {
        let mut idle = self.idle.clone();
        // The sender lives as long as the loops; if they are gone there is nothing to wait for.
        let _ = idle.wait_for(|n| *n >= self.concurrency).await;
    }

    /// Asks the workers to stop taking jobs.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Waits until every worker has finished its job in hand (after [`WorkerPool::stop`] or
    /// the shutdown token), at most `worker.shutdown_timeout` once shutdown began; jobs still
    /// running then are stopped and handed back.
    pub async fn join(mut self) {
        self.shutdown.cancelled().await;
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.timeout, all).await.is_ok() {
            return;
        }
        self.tasks.shutdown().await;
        let now = now_ms();
        let release = async {
            let mut handed_back = 0;
            for worker in &self.workers {
                handed_back += self.jobs.release(worker, now).await?;
            }
            Ok::<_, QueueError>(handed_back)
        };
        // A database that does not answer must not hold the exit: the claims go stale instead.
        match tokio::time::timeout(RELEASE_PATIENCE, release).await {
            Ok(Ok(handed_back)) => {
                tracing::warn!(
                    handed_back,
                    "jobs cut off by the shutdown timeout were handed back"
                );
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot hand back jobs; they go stale"),
            Err(_) => tracing::warn!("the database did not answer; jobs cut off go stale"),
        }
    }
}

/// Rescues stale claims every heartbeat interval; sweeps staging and tidies the job store every
/// sweep interval.
async fn maintain(context: Context, shutdown: CancellationToken) {
    let mut rescue = tokio::time::interval(context.settings.heartbeat_interval);
    let mut sweep = tokio::time::interval(context.settings.staging_sweep_interval);
    let mut database = rescue::Database::default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = rescue.tick() => rescue::stale_claims(&context, &mut database).await,
            _ = sweep.tick() => {
                rescue::orphaned_staging(&context).await;
                forget_old_jobs(&context).await;
                if let Err(e) = context.jobs.tidy(now_ms()).await {
                    tracing::warn!(error = %e, "could not tidy the job store");
                }
            }
        }
    }
}

/// Removes ended jobs past `job_retention` (their media stay; a kept upload of a FAILED one is
/// then an orphan the staging sweep removes).
pub(crate) async fn forget_old_jobs(context: &Context) {
    let Some(retention) = context.settings.job_retention else {
        return;
    };
    let before = now_ms().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    match context.jobs.forget_ended_jobs(before).await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed ended jobs past their retention"),
        Err(e) => tracing::warn!(error = %e, "could not remove old jobs"),
    }
}
