//! One worker's life: claim a due job, run it with its heartbeat beside it, record the outcome.
//!
//! The heartbeat and the job share one `select!` (no extra task). Every outcome is written only
//! while this worker still holds the claim; a worker that lost it removes what it stored.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Context, Failure, attempt, retry};
use crate::queue::{Job, Millis, now_ms};

/// The first wait after a failed claim, doubled per failure in a row up to [`CLAIM_RETRY_MAX`].
const CLAIM_RETRY_BASE: Duration = Duration::from_millis(100);
/// The longest wait between claims while the database fails.
const CLAIM_RETRY_MAX: Duration = Duration::from_secs(30);

/// Claims and runs jobs until `shutdown`; sleeps until woken, a retry is due, or the idle poll.
/// `idle` counts the loops of the pool that are sleeping.
pub async fn run(
    context: Context,
    worker: String,
    shutdown: CancellationToken,
    idle: Arc<watch::Sender<usize>>,
) {
    let jobs = &context.jobs;
    let mut wake_ups = jobs.wake_ups();
    let idle_poll = context.settings.idle_poll;
    // Claims that failed in a row: the loop backs off while the database cannot answer, and
    // says so once when it starts failing and once when it recovers, not on every attempt.
    let mut failures: u32 = 0;
    while !shutdown.is_cancelled() {
        wake_ups.borrow_and_update();
        let wait = match jobs.claim(&worker, now_ms()).await {
            Ok(claimed) => {
                if failures > 0 {
                    tracing::info!(failures, "claiming jobs again");
                    failures = 0;
                }
                if let Some(job) = claimed {
                    run_job(&context, &worker, job).await;
                    continue;
                }
                match jobs.next_run_at().await {
                    Ok(Some(due)) => {
                        Duration::from_millis(due.saturating_sub(now_ms()).max(0) as u64)
                    }
                    _ => idle_poll,
                }
                .clamp(Duration::from_millis(10), idle_poll)
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::error!(error = %e, "cannot claim jobs; retrying with backoff");
                }
                retry::jittered(retry::backoff(failures, CLAIM_RETRY_BASE, CLAIM_RETRY_MAX))
            }
        };
        idle.send_modify(|n| *n += 1);
        tokio::select! {
            () = shutdown.cancelled() => {}
            _ = wake_ups.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
        idle.send_modify(|n| *n -= 1);
    }
}

/// Runs every due job, one after another, then returns how many ran (for tests and tools).
pub async fn drain(context: &Context, worker: &str) -> usize {
    let mut ran = 0;
    while let Ok(Some(job)) = context.jobs.claim(worker, now_ms()).await {
        run_job(context, worker, job).await;
        ran += 1;
    }
    ran
}

/// Runs one claimed job to its recorded outcome, refreshing the claim meanwhile.
pub async fn run_job(context: &Context, worker: &str, job: Job) {
    let span = tracing::info_span!("job", id = %job.id, attempt = job.attempts);
    run_job_in_span(context, worker, job).instrument(span).await;
}

async fn run_job_in_span(context: &Context, worker: &str, job: Job) {
    let started = std::time::Instant::now();
    let attempt = attempt::run(context, worker, &job);
    tokio::pin!(attempt);
    let jobs = &context.jobs;
    let mut beat = tokio::time::interval(context.settings.heartbeat_interval);
    beat.tick().await;
    let outcome = loop {
        tokio::select! {
            outcome = &mut attempt => break outcome,
            _ = beat.tick() => {
                match jobs.heartbeat(&job.id, worker, now_ms()).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!("lost the claim; the result will be discarded"),
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
        }
    };
    let now = now_ms();
    match outcome {
        Ok(media) => match jobs.complete(&job.id, worker, &media, now).await {
            Ok(true) => {
                tracing::info!(media = %media.id, ms = started.elapsed().as_millis() as u64, "complete");
                attempt::remove(context, std::iter::once(job.staging_key.as_str())).await;
            }
            Ok(false) => {
                tracing::warn!("claim lost before completion; removing this attempt's objects");
                attempt::remove(context, media.keys()).await;
            }
            Err(e) => {
                // The commit may have happened; the objects stay. If it did not, the next
                // attempt removes them through `attempt_media_id`.
                tracing::warn!(error = %e, "could not record completion; will retry");
                give_back(context, worker, &job, &Failure::queue(e)).await;
            }
        },
        Err(failure) => give_back(context, worker, &job, &failure).await,
    }
}

/// Records a failed attempt: REJECTED, FAILED when permanent or out of attempts, else PENDING
/// again after the backoff.
async fn give_back(context: &Context, worker: &str, job: &Job, failure: &Failure) {
    let jobs = &context.jobs;
    let now = now_ms();
    let final_attempt = failure.is_permanent() || job.attempts >= job.max_attempts;
    // The client sees the code and the sentence; the detail goes only to this log line.
    let recorded = match failure {
        Failure::Rejected(verdict) => {
            tracing::warn!(job = %job.id, flags = ?verdict.flags, confidence = verdict.confidence, "rejected by moderation");
            jobs.reject(&job.id, worker, &verdict.details(), now).await
        }
        Failure::Transient(fault) | Failure::Permanent(fault) if final_attempt => {
            tracing::warn!(job = %job.id, code = %fault.code, error = %fault.detail, "failed");
            jobs.fail(&job.id, worker, fault.code, &fault.message, now)
                .await
        }
        Failure::Transient(fault) | Failure::Permanent(fault) => {
            let settings = &context.settings;
            let delay = retry::backoff(
                job.attempts,
                settings.retry_base_delay,
                settings.retry_max_delay,
            );
            tracing::warn!(job = %job.id, code = %fault.code, error = %fault.detail, retry_in_ms = delay.as_millis() as u64, "attempt failed");
            let run_at = now + delay.as_millis() as Millis;
            jobs.retry(&job.id, worker, fault.code, &fault.message, run_at, now)
                .await
        }
    };
    match recorded {
        Ok(true) if final_attempt => {
            attempt::remove(context, std::iter::once(job.staging_key.as_str())).await;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not record the failure; the claim will go stale")
        }
    }
}
