//! The `[worker]` table: how many jobs at once, how claims, retries and shutdown are timed.

use std::time::Duration;

use super::raw::RawWorker;
use super::{ConfigError, defaults, invalid};

/// Worker pool settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs processed at once by one process (default: one per core).
    pub concurrency: usize,
    /// Attempts before a transiently failing job ends FAILED.
    pub max_attempts: u32,
    /// How often a running job refreshes its claim.
    pub heartbeat_interval: Duration,
    /// A claim not refreshed for this long is taken back.
    pub stale_timeout: Duration,
    /// First retry delay; doubles per attempt.
    pub retry_base_delay: Duration,
    /// Upper bound of the retry delay.
    pub retry_max_delay: Duration,
    /// How long a job waits out storage or database outages before it ends FAILED.
    pub transient_window: Duration,
    /// Safety-net poll when no wake-up arrives.
    pub idle_poll: Duration,
    /// Staging objects with no job at all are removed after this age.
    pub staging_grace: Duration,
    /// How often staging is checked for leftovers.
    pub staging_sweep_interval: Duration,
    /// How long shutdown waits for jobs in hand.
    pub shutdown_timeout: Duration,
    /// Longest time the pixel work of one job may take before it ends FAILED.
    pub job_timeout: Duration,
    /// How long ended jobs are kept; `None` keeps them for ever.
    pub job_retention: Option<Duration>,
}

/// Checks the `[worker]` table: a claim must outlive its heartbeat, and the polls never spin
/// (at least a second).
pub fn read(w: RawWorker) -> Result<WorkerConfig, ConfigError> {
    if w.max_attempts == 0 {
        return Err(invalid("worker.max_attempts", "must be at least 1"));
    }
    if w.stale_timeout_secs <= w.heartbeat_interval_secs {
        return Err(invalid(
            "worker.stale_timeout_secs",
            "must be longer than worker.heartbeat_interval_secs",
        ));
    }
    if !(w.job_timeout_secs > 0.0 && w.job_timeout_secs.is_finite()) {
        return Err(invalid(
            "worker.job_timeout_secs",
            "must be a positive number of seconds",
        ));
    }
    if w.retry_base_delay_secs > w.retry_max_delay_secs {
        return Err(invalid(
            "worker.retry_base_delay_secs",
            "must not be longer than worker.retry_max_delay_secs",
        ));
    }
    let concurrency = match w.concurrency {
        Some(0) => return Err(invalid("worker.concurrency", "must be at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism()
            .map_or(defaults::CONCURRENCY_UNKNOWN_CORES, |n| n.get()),
    };
    let secs = Duration::from_secs;
    Ok(WorkerConfig {
        concurrency,
        max_attempts: w.max_attempts,
        heartbeat_interval: secs(w.heartbeat_interval_secs),
        stale_timeout: secs(w.stale_timeout_secs),
        retry_base_delay: secs(w.retry_base_delay_secs),
        retry_max_delay: secs(w.retry_max_delay_secs),
        transient_window: secs(w.transient_window_secs),
        idle_poll: secs(w.idle_poll_secs.max(1)),
        staging_grace: secs(w.staging_grace_secs),
        staging_sweep_interval: secs(w.staging_sweep_secs.max(1)),
        shutdown_timeout: secs(w.shutdown_timeout_secs),
        job_timeout: Duration::from_secs_f64(w.job_timeout_secs),
        job_retention: (w.job_retention_days > 0)
            .then(|| secs(w.job_retention_days.saturating_mul(86_400))),
    })
}
