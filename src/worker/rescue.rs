//! Recovery, kept apart from claiming: stale claims go back to the queue, and staging objects
//! that no live job refers to (a crash between staging and insert, a lost delete) are removed.

use super::Context;
use crate::queue::{Job, JobStatus, Millis, now_ms};

/// Whether this process's database has been answering, and since when. Claims are judged
/// stale only once it has answered for the stale timeout: after an outage, workers that were
/// merely cut off get that long to write their outcomes before their jobs are taken back (and
/// an attempt counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// Answering since this time ([`Millis::MIN`] at start: as if always).
    Answering {
        /// Since when.
        since: Millis,
    },
    /// The last check failed.
    Failing,
}

impl Default for Database {
    fn default() -> Database {
        Database::Answering { since: Millis::MIN }
    }
}

/// Returns claims whose worker stopped sending heartbeats to the queue. A job that had no
/// attempt left ends FAILED here, keeping its upload, and its dead attempt's objects are
/// removed here (a job going back to PENDING has its next attempt do that).
pub async fn stale_claims(context: &Context, database: &mut Database) {
    let now = now_ms();
    let stale = context.settings.stale_timeout.as_millis() as Millis;
    let stale_before = match *database {
        Database::Answering { since } if now.saturating_sub(since) >= stale => now - stale,
        // Still run the statement (it takes nothing back): it tells whether the database answers.
        _ => Millis::MIN,
    };
    let rescued = match context.jobs.rescue_stale(stale_before, now).await {
        Ok(rescued) => {
            if *database == Database::Failing {
                *database = Database::Answering { since: now };
            }
            rescued
        }
        Err(e) => {
            *database = Database::Failing;
            return tracing::warn!(error = %e, "could not check for stale claims");
        }
    };
    if !rescued.is_empty() {
        tracing::warn!(
            jobs = rescued.len(),
            "took back jobs whose worker stopped responding"
        );
    }
    for job in rescued.iter().filter(|j| j.status == JobStatus::Failed) {
        remove_leftovers(context, job).await;
    }
}

/// Deletes what a job that ended FAILED without its worker still holds in storage, but its
/// upload when that is kept.
async fn remove_leftovers(context: &Context, job: &Job) {
    let storage = &context.storage;
    let attempt = match &job.attempt_media_id {
        Some(media) => {
            storage
                .delete_attempt(&job.source_type, &job.source_id, media)
                .await
        }
        None => Ok(()),
    };
    // A staging object left behind is also swept later by `orphaned_staging`.
    let staged = match job.holds_upload() {
        true => Ok(()),
        false => storage.delete(&job.staging_key).await,
    };
    if let Err(e) = attempt.and(staged) {
        tracing::warn!(job = %job.id, error = %e, "could not remove a failed job's objects");
    }
}

/// Deletes staging objects whose job has ended without keeping its upload (a worker that died between recording the end
/// and deleting the upload leaves one), and those older than the grace period with no job at
/// all (a crash between staging and insert). Uploads still being staged have no job yet and
/// are younger than the grace period.
pub async fn orphaned_staging(context: &Context) {
    let storage = &context.storage;
    let grace =
        chrono::Duration::from_std(context.settings.staging_grace).unwrap_or(chrono::Duration::MAX);
    let listed = match storage.list(&storage.keys().staging).await {
        Ok(listed) => listed,
        Err(e) => return tracing::warn!(error = %e, "could not list staging objects"),
    };
    let cutoff = chrono::Utc::now() - grace;
    for object in listed {
        let job = match storage.keys().job_of_staging_key(&object.key) {
            Some(job_id) => match context.jobs.get(&job_id).await {
                Ok(job) => job,
                Err(e) => return tracing::warn!(error = %e, "could not check staging objects"),
            },
            None => None,
        };
        let orphaned = match job {
            Some(job) => !job.holds_upload(),
            None => object.last_modified < cutoff,
        };
        if orphaned {
            tracing::info!(key = %object.key, "removing an orphaned staging object");
            if let Err(e) = storage.delete(&object.key).await {
                tracing::warn!(key = %object.key, error = %e, "could not remove a staging object");
            }
        }
    }
    // A write cut short by a crash leaves its temporary file (local store); one still being
    // written is touched at least every upload idle timeout, far inside the grace period.
    let temporaries = match storage.list_temporaries(&storage.keys().staging).await {
        Ok(found) => found,
        Err(e) => return tracing::warn!(error = %e, "could not list staging temporaries"),
    };
    for object in temporaries.iter().filter(|o| o.last_modified < cutoff) {
        tracing::info!(key = %object.key, "removing a partial staging file");
        if let Err(e) = storage.delete_temporary(&object.key).await {
            tracing::warn!(key = %object.key, error = %e, "could not remove a partial staging file");
        }
    }
}
