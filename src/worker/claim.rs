//! One worker's life: claim a due job, run it with its heartbeat beside it, record the outcome.
//!
//! The heartbeat and the job share one `select!` (no extra task). Every outcome is written only
//! while this worker still holds the claim; a worker that lost it removes what it stored.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::retry::Next;
use super::{Context, Failure, attempt, retry};
use crate::queue::{Failed, Job, QueueError, now_ms};
use crate::traces;

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
    context.metrics.loop_started();
    while !shutdown.is_cancelled() {
        wake_ups.borrow_and_update();
        let wait = match jobs.claim(&worker, now_ms()).await {
            Ok(claimed) => {
                if failures > 0 {
                    tracing::info!(failures, "claiming jobs again");
                    context.metrics.claims_recovered();
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
                    context.metrics.claims_failing();
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
    if failures > 0 {
        context.metrics.claims_recovered();
    }
    context.metrics.loop_stopped();
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

/// Runs one claimed job to its recorded outcome, refreshing the claim meanwhile. Its span
/// carries the id of the request that uploaded it, so one search finds the upload's whole life,
/// and continues its trace.
pub async fn run_job(context: &Context, worker: &str, job: Job) {
    let _busy = context.metrics.busy();
    let request = job.request_id.as_deref().unwrap_or("");
    let span = tracing::info_span!("job", id = %job.id, attempt = job.attempts, request);
    traces::continue_from(&span, job.trace_parent.as_deref());
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
    match outcome {
        Ok(media) => {
            let completed = persist("completion", context, || {
                jobs.complete(&job.id, worker, &media, now_ms())
            })
            .await;
            match completed {
                Ok(true) => {
                    tracing::info!(media = %media.id, ms = started.elapsed().as_millis() as u64, "complete");
                    context.metrics.finished("COMPLETE", None);
                    attempt::remove(context, std::iter::once(job.staging_key.as_str())).await;
                }
                Ok(false) => {
                    tracing::warn!("claim lost before completion; removing this attempt's objects");
                    attempt::remove(context, media.keys()).await;
                }
                Err(e) => {
                    // Not an outage: the database refused the record. The objects stay for
                    // the next attempt to remove (`attempt_media_id`).
                    tracing::warn!(error = %e, "could not record completion; will retry");
                    give_back(context, worker, &job, &Failure::queue(e)).await;
                }
            }
        }
        Err(failure) => give_back(context, worker, &job, &failure).await,
    }
}

/// Records a failed attempt as [`retry::next`] decides. The staged upload is deleted only
/// with an ending whose reason cannot change.
async fn give_back(context: &Context, worker: &str, job: &Job, failure: &Failure) {
    let jobs = &context.jobs;
    let fault = match failure {
        Failure::Rejected(verdict) => {
            tracing::warn!(job = %job.id, flags = ?verdict.flags, confidence = verdict.confidence, "rejected by moderation");
            let details = verdict.details();
            let recorded = persist("the rejection", context, || {
                jobs.reject(&job.id, worker, &details, now_ms())
            })
            .await;
            if matches!(recorded, Ok(true)) {
                context.metrics.finished("REJECTED", None);
            }
            return after_ending(context, job, recorded, true).await;
        }
        Failure::Transient(fault) | Failure::Outage(fault) | Failure::Permanent(fault) => fault,
    };
    let (code, error) = (fault.code, fault.message.as_str());
    let next = retry::next(&context.settings, job, failure, now_ms());
    // The client sees the code and the sentence; the detail goes only to this log line.
    tracing::warn!(job = %job.id, %code, error = %fault.detail, ?next, "attempt failed");
    let recorded = match next {
        Next::Fail { upload_kept } => {
            let failed = Failed {
                code,
                error,
                upload_kept,
            };
            persist("the failure", context, || {
                jobs.fail(&job.id, worker, failed, now_ms())
            })
            .await
        }
        Next::Retry { run_at } => {
            persist("the retry", context, || {
                jobs.retry(&job.id, worker, code, error, run_at, now_ms())
            })
            .await
        }
        Next::Defer { run_at } => {
            persist("the deferral", context, || {
                jobs.defer(&job.id, worker, code, error, run_at, now_ms())
            })
            .await
        }
    };
    if matches!(next, Next::Fail { .. }) && matches!(recorded, Ok(true)) {
        context.metrics.finished("FAILED", Some(code.as_str()));
    }
    let delete_upload = next == Next::Fail { upload_kept: false };
    after_ending(context, job, recorded, delete_upload).await;
}

/// Deletes the staged upload once an ending that does not keep it is recorded.
async fn after_ending(
    context: &Context,
    job: &Job,
    recorded: Result<bool, QueueError>,
    delete_upload: bool,
) {
    match recorded {
        Ok(true) if delete_upload => {
            attempt::remove(context, std::iter::once(job.staging_key.as_str())).await;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not record the outcome; the claim will go stale")
        }
    }
}

/// Runs a write of the job's outcome, again and again while the database is unavailable: the
/// outcome is in hand, and giving up would leave the claim to go stale and cost an attempt.
/// Waits at most a heartbeat interval between tries, so the outcome is written soon after the
/// database is back, well before the stale timeout (`rescue` waits that long after an
/// outage). A failure that is not an outage is returned at once. Shutdown interrupts this
/// through the pool's join timeout; the claim then goes stale.
async fn persist<T, F, Fut>(what: &str, context: &Context, mut write: F) -> Result<T, QueueError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, QueueError>>,
{
    let mut failures: u32 = 0;
    loop {
        match write().await {
            Err(e) if e.is_outage() => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(error = %e, "cannot record {what}; retrying until the database is back");
                }
                let wait = retry::backoff(
                    failures,
                    CLAIM_RETRY_BASE,
                    context.settings.heartbeat_interval,
                );
                tokio::time::sleep(retry::jittered(wait)).await;
            }
            done => {
                if failures > 0 && done.is_ok() {
                    tracing::info!(failures, "recorded {what} after the database came back");
                }
                return done;
            }
        }
    }
}
