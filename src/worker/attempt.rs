//! One attempt at a claimed job: read the staged upload, run the pipeline off the async threads
//! (moderating between `prepare` and `finish`), store every object, describe the media.
//!
//! Whatever stops the attempt is a [`Failure`]; recording it is `claim`'s job.

use std::time::Duration;

use bytes::Bytes;
use tracing::Instrument;

use super::{Context, Failure, Fault, moderate};
use crate::ids::MediaId;
use crate::metrics::Stage;
use crate::pipeline::shrink::Needs;
use crate::pipeline::stop::Stop;
use crate::pipeline::{self, Processed};
use crate::queue::{Job, JobErrorCode, Media, StoredVariant, now_ms};
use crate::storage::StorageError;

/// Runs one attempt; on success the media is stored but not yet recorded.
pub(super) async fn run(context: &Context, worker: &str, job: &Job) -> Result<Media, Failure> {
    let storage = &context.storage;
    if let Some(previous) = &job.attempt_media_id {
        // An earlier attempt died after storing some objects: remove them first.
        storage
            .delete_attempt(&job.source_type, &job.source_id, previous)
            .await
            .map_err(|e| Failure::storage(format!("could not clean up an earlier attempt: {e}")))?;
    }
    let media_id = MediaId::generate();
    match context.jobs.start_attempt(&job.id, worker, &media_id).await {
        Ok(true) => {}
        Ok(false) => return Err(Failure::claim_lost("before processing began")),
        Err(e) => return Err(Failure::queue(e)),
    }
    let bytes = storage.get(&job.staging_key).await.map_err(|e| match e {
        StorageError::NotFound(_) => Failure::Permanent(Fault {
            code: JobErrorCode::StorageUnavailable,
            message: "The uploaded file is no longer available.".into(),
            detail: format!("{} is no longer in staging", job.staging_key),
        }),
        e => Failure::storage(format!("could not read the upload: {e}")),
    })?;
    let spec = context
        .outputs
        .get(&job.source_type)
        .cloned()
        .ok_or_else(|| {
            Failure::internal(format!(
                "source type {:?} is no longer configured",
                job.source_type
            ))
        })?;
    let limits = context.limits;
    let budget = context.settings.job_timeout;
    let moderation = context
        .moderation
        .as_ref()
        .filter(|m| m.applies_to(&job.source_type))
        .cloned();
    let side = moderation.as_ref().map(|m| m.image_side());
    // The pixels need be no larger than the variants and the moderation thumbnail.
    let needs = side
        .into_iter()
        .fold(Needs::outputs(&spec), Needs::with_thumbnail);
    let started = std::time::Instant::now();
    let (bytes, prepared, thumbnail) = off_thread(budget, budget, move |stop| {
        let prepared = pipeline::prepare_until(&bytes, &limits, &needs, stop)?;
        let thumbnail = side.map(|side| prepared.thumbnail(side)).transpose()?;
        Ok((bytes, prepared, thumbnail))
    })
    .instrument(tracing::info_span!("prepare"))
    .await?;
    let pixel_time = started.elapsed();
    let metrics = &context.metrics;
    metrics.stage(Stage::probe, prepared.timings.probe);
    metrics.stage(Stage::decode, prepared.timings.decode);
    if let (Some(moderation), Some(thumbnail)) = (moderation, thumbnail) {
        let started = std::time::Instant::now();
        let checked = moderate::check(context, worker, job, &moderation, &thumbnail)
            .instrument(tracing::info_span!("moderate"))
            .await;
        metrics.stage(Stage::moderation, started.elapsed());
        checked?;
    }
    // The time limit counts pixel work only; moderation has its own timeout.
    let left = budget.saturating_sub(pixel_time);
    // The original is stripped first and stored while the variants are made.
    let (original_tx, original_rx) = tokio::sync::oneshot::channel();
    let keep_original = spec.keep_original;
    let extension = prepared.format.extension();
    let variants_only = pipeline::OutputSpec {
        keep_original: false,
        ..spec
    };
    let finishing = off_thread(left, budget, move |stop| {
        let started = std::time::Instant::now();
        if keep_original {
            // A failure to strip fails the job; the sender is dropped and nothing is stored.
            let _ = original_tx.send(prepared.stripped_original(&bytes)?);
        }
        let strip = started.elapsed();
        let mut processed = pipeline::finish_until(&bytes, &prepared, &variants_only, stop)?;
        processed.timings.strip = strip;
        Ok(processed)
    })
    .instrument(tracing::info_span!("variants"));
    let storing = store_original(context, job, &media_id, extension, original_rx)
        .instrument(tracing::info_span!("store_original"));
    let (processed, original_key) = match tokio::join!(finishing, storing) {
        (Ok(processed), Ok(key)) => (processed, key),
        (Err(e), Ok(Some(key))) => {
            remove(context, std::iter::once(key.as_str())).await;
            return Err(e);
        }
        (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
    };
    metrics.stage(Stage::resize, processed.timings.resize);
    metrics.stage(Stage::encode, processed.timings.encode);
    if keep_original {
        metrics.stage(Stage::strip, processed.timings.strip);
    }
    let started = std::time::Instant::now();
    let stored = store(context, job, media_id, processed, original_key)
        .instrument(tracing::info_span!("store"))
        .await;
    metrics.stage(Stage::store, started.elapsed());
    stored
}

/// Stores the stripped original when one comes; `None` when none is kept.
async fn store_original(
    context: &Context,
    job: &Job,
    media_id: &MediaId,
    extension: &str,
    original: tokio::sync::oneshot::Receiver<Vec<u8>>,
) -> Result<Option<String>, Failure> {
    let Ok(bytes) = original.await else {
        return Ok(None);
    };
    let key =
        context
            .storage
            .keys()
            .original(&job.source_type, &job.source_id, media_id, extension);
    let size = bytes.len() as u64;
    context
        .storage
        .put(&key, Bytes::from(bytes))
        .await
        .map_err(|e| Failure::storage(format!("could not store the original: {e}")))?;
    context.metrics.stored(size);
    Ok(Some(key))
}

/// Runs pixel work on a blocking thread, within `left` of the job's `budget`.
///
/// Past the limit the work is told to stop and this waits until it has: the thread cannot be
/// killed, and returning at once would let the worker take its next job beside it, so a slow
/// job would take CPU and memory beyond `concurrency`. The work checks between steps, and the
/// work budget bounds each step, so the wait is short. What the work logs is in the caller's span.
async fn off_thread<T: Send + 'static>(
    left: Duration,
    budget: Duration,
    work: impl FnOnce(&Stop) -> Result<T, pipeline::PipelineError> + Send + 'static,
) -> Result<T, Failure> {
    let stop = Stop::default();
    let mut running = tokio::task::spawn_blocking({
        let stop = stop.clone();
        let span = tracing::Span::current();
        move || span.in_scope(|| work(&stop))
    });
    let ended = match tokio::time::timeout(left, &mut running).await {
        Ok(ended) => ended,
        Err(_) => {
            stop.stop();
            let _ = running.await;
            return Err(Failure::timed_out(budget));
        }
    };
    ended
        .map_err(|e| Failure::internal(format!("processing crashed: {e}")))?
        .map_err(Failure::from)
}

/// Writes the variants under a fresh media id beside the stored original (`original_key`); on
/// failure removes them all again.
async fn store(
    context: &Context,
    job: &Job,
    media_id: MediaId,
    processed: Processed,
    original_key: Option<String>,
) -> Result<Media, Failure> {
    let storage = &context.storage;
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
    let bytes: usize = writes.iter().map(|(_, b)| b.len()).sum();
    let puts = writes
        .into_iter()
        .map(|(key, bytes)| async move { storage.put(&key, bytes).await });
    // Every put runs to its end before any cleanup: a put dropped early may still finish (a
    // local write runs on a blocking thread) after its object was removed.
    let results = futures::future::join_all(puts).await;
    if let Some(e) = results.into_iter().find_map(Result::err) {
        remove(context, media.keys()).await;
        return Err(Failure::storage(format!(
            "could not store the results: {e}"
        )));
    }
    context.metrics.stored(bytes as u64);
    Ok(media)
}

/// Deletes objects, logging (not failing) when one cannot be removed: cleanup retries later.
pub(super) async fn remove<'a>(context: &Context, keys: impl Iterator<Item = &'a str>) {
    for key in keys {
        if let Err(e) = context.storage.delete(key).await {
            tracing::warn!(key, error = %e, "could not remove an object");
        }
    }
}
