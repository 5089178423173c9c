//! The worker pool: `concurrency` claim loops plus one maintenance loop, stopped together.
//!
//! Shutdown: the token stops new claims; jobs in hand finish (bounded by
//! `worker.shutdown_timeout`; anything cut off is taken back later as a stale claim).

pub mod claim;
mod moderate;
pub mod rescue;
pub mod retry;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ImagePipeline;

/// Running workers of one process.
pub struct WorkerPool {
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
    timeout: std::time::Duration,
}

impl WorkerPool {
    /// Starts the claim loops and the maintenance loop.
    pub fn start(pipeline: ImagePipeline, shutdown: CancellationToken) -> WorkerPool {
        let cfg = pipeline.config().worker.clone();
        let process = format!("{}-{}", std::process::id(), &cuid2::create_id()[..8]);
        let mut tasks = JoinSet::new();
        for n in 0..cfg.concurrency {
            let worker = format!("{process}-{n}");
            tasks.spawn(claim::run(pipeline.clone(), worker, shutdown.clone()));
        }
        tasks.spawn(maintain(pipeline, shutdown.clone()));
        tracing::info!(concurrency = cfg.concurrency, "workers started");
        WorkerPool {
            tasks,
            shutdown,
            timeout: cfg.shutdown_timeout,
        }
    }

    /// Asks the workers to stop taking jobs.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Waits until every worker has finished its job in hand (after [`WorkerPool::stop`] or
    /// the shutdown token), at most `worker.shutdown_timeout` once shutdown began.
    pub async fn join(mut self) {
        self.shutdown.cancelled().await;
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.timeout, all).await.is_err() {
            tracing::warn!("jobs still running at the shutdown timeout; they will be retried");
            self.tasks.abort_all();
        }
    }
}

/// Rescues stale claims every heartbeat interval and sweeps staging every sweep interval.
async fn maintain(pipeline: ImagePipeline, shutdown: CancellationToken) {
    let cfg = pipeline.config().worker.clone();
    let mut rescue = tokio::time::interval(cfg.heartbeat_interval);
    let mut sweep = tokio::time::interval(cfg.staging_sweep_interval);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = rescue.tick() => rescue::stale_claims(&pipeline).await,
            _ = sweep.tick() => rescue::orphaned_staging(&pipeline).await,
        }
    }
}
