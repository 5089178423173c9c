//! One worker's life: claim a due job, run it with its heartbeat beside it, record the outcome.
//!
//! The heartbeat and the job share one `select!` (no extra task). Every outcome is written only
//! while this worker still holds the claim; a worker that lost it removes what it stored.

use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{moderate, retry};
use crate::ImagePipeline;
use crate::moderation::Verdict;
use crate::pipeline::{self, Processed};
use crate::queue::{Job, Media, MediaId, Millis, StoredVariant, now_ms};
use crate::storage::StorageError;

/// Why one attempt did not produce media, and whether trying again could help.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong, in words (shown as the job's `error`).
    pub message: String,
    /// `true` when the same bytes will fail again (no retry).
    pub permanent: bool,
    /// Set when moderation refused the image: the job ends REJECTED, not FAILED.
    pub rejection: Option<Box<Verdict>>,
}

impl Failure {
    pub(super) fn transient(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            permanent: false,
            rejection: None,
        }
    }

    pub(super) fn permanent(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            permanent: true,
            rejection: None,
        }
    }

    pub(super) fn rejected(verdict: Verdict) -> Failure {
        Failure {
            message: "Content moderation failed".into(),
            permanent: true,
            rejection: Some(Box::new(verdict)),
        }
    }
}

/// Claims and runs jobs until `shutdown`; sleeps until woken, a retry is due, or the idle poll.
pub async fn run(pipeline: ImagePipeline, worker: String, shutdown: CancellationToken) {
    let jobs = pipeline.jobs();
    let mut wake_ups = jobs.wake_ups();
    let idle_poll = pipeline.config().worker.idle_poll;
    while !shutdown.is_cancelled() {
        wake_ups.borrow_and_update();
        match jobs.claim(&worker, now_ms()).await {
            Ok(Some(job)) => {
                run_job(&pipeline, &worker, job).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not claim a job"),
        }
        let wait = match jobs.next_run_at().await {
            Ok(Some(due)) => Duration::from_millis(due.saturating_sub(now_ms()).max(0) as u64),
            _ => idle_poll,
        }
        .clamp(Duration::from_millis(10), idle_poll);
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = wake_ups.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Runs every due job, one after another, then returns how many ran (for tests and tools).
pub async fn drain(pipeline: &ImagePipeline, worker: &str) -> usize {
    let mut ran = 0;
    while let Ok(Some(job)) = pipeline.jobs().claim(worker, now_ms()).await {
        run_job(pipeline, worker, job).await;
        ran += 1;
    }
    ran
}

/// Runs one claimed job to its recorded outcome, refreshing the claim meanwhile.
pub async fn run_job(pipeline: &ImagePipeline, worker: &str, job: Job) {
    let span = tracing::info_span!("job", id = %job.id, attempt = job.attempts);
    run_job_in_span(pipeline, worker, job)
        .instrument(span)
        .await;
}

async fn run_job_in_span(pipeline: &ImagePipeline, worker: &str, job: Job) {
    let started = std::time::Instant::now();
    let attempt = attempt(pipeline, worker, &job);
    tokio::pin!(attempt);
    let mut beat = tokio::time::interval(pipeline.config().worker.heartbeat_interval);
    beat.tick().await;
    let outcome = loop {
        tokio::select! {
            outcome = &mut attempt => break outcome,
            _ = beat.tick() => {
                match pipeline.jobs().heartbeat(&job.id, worker, now_ms()).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!("lost the claim; the result will be discarded"),
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
        }
    };
    let jobs = pipeline.jobs();
    let now = now_ms();
    match outcome {
        Ok(media) => match jobs.complete(&job.id, worker, &media, now).await {
            Ok(true) => {
                tracing::info!(media = %media.id, ms = started.elapsed().as_millis() as u64, "complete");
                remove(pipeline, std::iter::once(job.staging_key.as_str())).await;
            }
            Ok(false) => {
                tracing::warn!("claim lost before completion; removing this attempt's objects");
                remove(pipeline, media.keys()).await;
            }
            Err(e) => {
                // The commit may have happened; the objects stay. If it did not, the next
                // attempt removes them through `attempt_media_id`.
                tracing::warn!(error = %e, "could not record completion; will retry");
                give_back(pipeline, worker, &job, &Failure::transient(e.to_string())).await;
            }
        },
        Err(failure) => give_back(pipeline, worker, &job, &failure).await,
    }
}

/// Records a failed attempt: FAILED when permanent or out of attempts, else PENDING later.
async fn give_back(pipeline: &ImagePipeline, worker: &str, job: &Job, failure: &Failure) {
    let jobs = pipeline.jobs();
    let now = now_ms();
    let final_attempt = failure.permanent || job.attempts >= job.max_attempts;
    let recorded = if let Some(verdict) = &failure.rejection {
        tracing::warn!(flags = ?verdict.flags, confidence = verdict.confidence, "rejected by moderation");
        jobs.reject(&job.id, worker, &verdict.details(), now).await
    } else if final_attempt {
        tracing::warn!(error = %failure.message, "failed");
        jobs.fail(&job.id, worker, &failure.message, now).await
    } else {
        let cfg = &pipeline.config().worker;
        let delay = retry::backoff(job.attempts, cfg.retry_base_delay, cfg.retry_max_delay);
        tracing::warn!(error = %failure.message, retry_in_ms = delay.as_millis() as u64, "attempt failed");
        jobs.retry(
            &job.id,
            worker,
            &failure.message,
            now + delay.as_millis() as Millis,
            now,
        )
        .await
    };
    match recorded {
        Ok(true) if final_attempt => {
            remove(pipeline, std::iter::once(job.staging_key.as_str())).await;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not record the failure; the claim will go stale")
        }
    }
}

/// One attempt: read the staged upload, process it, store every object, describe the media.
async fn attempt(pipeline: &ImagePipeline, worker: &str, job: &Job) -> Result<Media, Failure> {
    let storage = pipeline.storage();
    if let Some(previous) = &job.attempt_media_id {
        // An earlier attempt died after storing some objects: remove them first.
        storage
            .delete_attempt(&job.source_type, &job.source_id, previous)
            .await
            .map_err(|e| {
                Failure::transient(format!("could not clean up an earlier attempt: {e}"))
            })?;
    }
    let media_id = MediaId::generate();
    match pipeline
        .jobs()
        .start_attempt(&job.id, worker, &media_id)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return Err(Failure::transient(
                "the claim was lost before processing began",
            ));
        }
        Err(e) => return Err(Failure::transient(e.to_string())),
    }
    let bytes = pipeline
        .storage()
        .get(&job.staging_key)
        .await
        .map_err(|e| match e {
            StorageError::NotFound(_) => {
                Failure::permanent("the uploaded file is no longer in staging")
            }
            e => Failure::transient(format!("could not read the upload: {e}")),
        })?;
    let spec = pipeline
        .config()
        .output_spec(&job.source_type)
        .ok_or_else(|| {
            Failure::permanent(format!(
                "source type {:?} is no longer configured",
                job.source_type
            ))
        })?;
    let limits = pipeline.config().limits;
    let budget = pipeline.config().worker.job_timeout;
    let moderation = pipeline
        .moderation()
        .filter(|m| m.applies_to(&job.source_type))
        .cloned();
    let side = moderation.as_ref().map(|m| m.image_side());
    let started = std::time::Instant::now();
    let (bytes, prepared, thumbnail) = off_thread(budget, budget, move || {
        let prepared = pipeline::prepare(&bytes, &limits)?;
        let thumbnail = side.map(|side| prepared.thumbnail(side)).transpose()?;
        Ok((bytes, prepared, thumbnail))
    })
    .await?;
    let pixel_time = started.elapsed();
    if let (Some(moderation), Some(thumbnail)) = (moderation, thumbnail) {
        moderate::check(pipeline, worker, job, &moderation, &thumbnail).await?;
    }
    // The time limit counts pixel work only; moderation has its own timeout.
    let left = budget.saturating_sub(pixel_time);
    let processed = off_thread(left, budget, move || {
        pipeline::finish(&bytes, &prepared, &spec)
    })
    .await?;
    store(pipeline, job, media_id, processed).await
}

/// Runs pixel work on a blocking thread, within `left` of the job's `budget`.
async fn off_thread<T: Send + 'static>(
    left: Duration,
    budget: Duration,
    work: impl FnOnce() -> Result<T, pipeline::PipelineError> + Send + 'static,
) -> Result<T, Failure> {
    // On timeout the thread cannot be stopped; its result is dropped when it ends.
    tokio::time::timeout(left, tokio::task::spawn_blocking(work))
        .await
        .map_err(|_| {
            Failure::permanent(format!(
                "processing took longer than the {} s limit",
                budget.as_secs_f64()
            ))
        })?
        .map_err(|e| Failure::permanent(format!("processing crashed: {e}")))?
        .map_err(|e| Failure {
            message: e.to_string(),
            permanent: e.is_permanent(),
            rejection: None,
        })
}

/// Writes the variants and the original under a fresh media id; on failure removes them again.
async fn store(
    pipeline: &ImagePipeline,
    job: &Job,
    media_id: MediaId,
    processed: Processed,
) -> Result<Media, Failure> {
    let storage = pipeline.storage();
    let keys = storage.keys();
    let (st, sid) = (job.source_type.as_str(), job.source_id.as_str());
    let mut writes: Vec<(String, Bytes)> = Vec::new();
    let mut variants = Vec::new();
    for v in processed.variants {
        let key = keys.variant(st, sid, &media_id, &v.name);
        variants.push((
            v.name,
            StoredVariant {
                key: key.clone(),
                width: v.width,
                height: v.height,
            },
        ));
        writes.push((key, Bytes::from(v.webp)));
    }
    let original_key = processed.original.map(|bytes| {
        let key = keys.original(st, sid, &media_id, processed.format.extension());
        writes.push((key.clone(), Bytes::from(bytes)));
        key
    });
    let media = Media {
        id: media_id,
        job_id: job.id.clone(),
        source_type: job.source_type.clone(),
        source_id: job.source_id.clone(),
        variants,
        original_key,
        width: processed.width,
        height: processed.height,
        aspect_ratio: processed.aspect_ratio,
        blurhash: processed.blurhash,
        format: processed.format.name().to_ascii_lowercase(),
        created_at: now_ms(),
    };
    let puts = writes
        .into_iter()
        .map(|(key, bytes)| async move { storage.put(&key, bytes).await });
    if let Err(e) = futures::future::try_join_all(puts).await {
        remove(pipeline, media.keys()).await;
        return Err(Failure::transient(format!(
            "could not store the results: {e}"
        )));
    }
    Ok(media)
}

/// Deletes objects, logging (not failing) when one cannot be removed: cleanup retries later.
async fn remove<'a>(pipeline: &ImagePipeline, keys: impl Iterator<Item = &'a str>) {
    for key in keys {
        if let Err(e) = pipeline.storage().delete(key).await {
            tracing::warn!(key, error = %e, "could not remove an object");
        }
    }
}
