//! Recovery, kept apart from claiming: stale claims go back to the queue, and staging objects
//! that no live job refers to (a crash between staging and insert, a lost delete) are removed.

use crate::ImagePipeline;
use crate::queue::{Millis, now_ms};

/// Returns claims whose worker stopped sending heartbeats to the queue.
pub async fn stale_claims(pipeline: &ImagePipeline) {
    let now = now_ms();
    let stale_before = now - pipeline.config().worker.stale_timeout.as_millis() as Millis;
    match pipeline.jobs().rescue_stale(stale_before, now).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(jobs = n, "took back jobs whose worker stopped responding"),
        Err(e) => tracing::warn!(error = %e, "could not check for stale claims"),
    }
}

/// Deletes staging objects older than the grace period whose job is gone or has ended.
pub async fn orphaned_staging(pipeline: &ImagePipeline) {
    let storage = pipeline.storage();
    let grace = chrono::Duration::from_std(pipeline.config().worker.staging_grace)
        .unwrap_or(chrono::Duration::MAX);
    let listed = match storage.list(&storage.keys().staging).await {
        Ok(listed) => listed,
        Err(e) => return tracing::warn!(error = %e, "could not list staging objects"),
    };
    let cutoff = chrono::Utc::now() - grace;
    for object in listed.into_iter().filter(|o| o.last_modified < cutoff) {
        let live = match storage.keys().job_of_staging_key(&object.key) {
            Some(job_id) => match pipeline.jobs().get(&job_id).await {
                Ok(job) => job.is_some_and(|j| !j.status.is_terminal()),
                Err(e) => return tracing::warn!(error = %e, "could not check staging objects"),
            },
            None => false,
        };
        if !live {
            tracing::info!(key = %object.key, "removing an orphaned staging object");
            if let Err(e) = storage.delete(&object.key).await {
                tracing::warn!(key = %object.key, error = %e, "could not remove a staging object");
            }
        }
    }
}
