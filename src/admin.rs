//! Operator access: the raw job store and object storage, and the worker's maintenance steps run
//! on demand. For the command line, for operators' own tools and for tests.
//!
//! **This bypasses the rules the service keeps.** Writes through [`Admin::jobs`] are not fenced
//! by claims unless the call itself says so, and objects written or deleted through
//! [`Admin::storage`] are not recorded anywhere. A host application serving uploads never needs
//! it: [`crate::ImagePipeline`] has the operations a host uses.

use crate::ids::JobId;
use crate::queue::{Job, JobStatus, JobStore, QueueError, now_ms};
use crate::storage::{Storage, StorageError};
use crate::worker::{self, claim, rescue};

/// Operator access to one pipeline's stores and maintenance. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    worker: worker::Context,
}

impl Admin {
    /// Operator access over the stores of a worker context.
    pub fn new(worker: worker::Context) -> Admin {
        Admin { worker }
    }

    /// The job and media store, unfenced.
    pub fn jobs(&self) -> &dyn JobStore {
        self.worker.jobs.as_ref()
    }

    /// The object storage, unrecorded.
    pub fn storage(&self) -> &Storage {
        &self.worker.storage
    }

    /// Runs every due job in this task, one after another, as worker `worker`; returns how many
    /// ran. What tests and tools use instead of a worker pool, so nothing depends on timing.
    pub async fn run_pending_jobs(&self, worker: &str) -> usize {
        claim::drain(&self.worker, worker).await
    }

    /// Sends every webhook delivery due now, one at a time; how many were attempted (0 without
    /// `[webhooks]`).
    pub async fn send_due_webhooks(&self) -> usize {
        match &self.worker.webhooks {
            Some(sender) => sender.send_due().await,
            None => 0,
        }
    }

    /// Runs one job already claimed by `worker` to its recorded outcome.
    pub async fn run_claimed_job(&self, worker: &str, job: Job) {
        claim::run_job(&self.worker, worker, job).await;
    }

    /// Takes back claims whose worker stopped sending heartbeats (what the pool does every
    /// heartbeat interval).
    pub async fn rescue_stale_claims(&self) {
        rescue::stale_claims(&self.worker, &mut rescue::Database::default()).await;
    }

    /// Puts a FAILED job that kept its upload (an outage past the transient window, attempts
    /// used up by failures that may pass) back to PENDING with its attempts reset, once its
    /// upload is found still staged: an operator's retry. A process serving
    /// status answers shows the change within a second ([`crate::ImagePipeline::requeue`]
    /// shows it at once in its own).
    ///
    /// # Errors
    /// [`RequeueError`] says why not: no such job, a job in another state or one whose upload
    /// was deleted, or the database or storage failing.
    pub async fn requeue(&self, id: &JobId) -> Result<Job, RequeueError> {
        let jobs = self.jobs();
        let job = jobs.get(id).await?.ok_or(RequeueError::NotFound)?;
        if !(job.status == JobStatus::Failed && job.upload_kept) {
            return Err(RequeueError::NotRetryable(job.status));
        }
        if !self.storage().exists(&job.staging_key).await? {
            return Err(RequeueError::UploadGone);
        }
        // The row may have changed since it was read: the store checks again.
        match jobs.requeue(id, now_ms()).await? {
            Some(job) => Ok(job),
            None => Err(RequeueError::NotRetryable(
                jobs.get(id).await?.map_or(JobStatus::Failed, |j| j.status),
            )),
        }
    }

    /// Removes staging objects no live job refers to (what the pool does every sweep interval).
    pub async fn sweep_staging(&self) {
        rescue::orphaned_staging(&self.worker).await;
    }

    /// Removes ended jobs past `[worker] job_retention_days` (what the pool does every sweep
    /// interval).
    pub async fn forget_old_jobs(&self) {
        worker::forget_old_jobs(&self.worker).await;
    }
}

/// Why [`Admin::requeue`] did not put a job back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequeueError {
    /// No job has this id.
    #[error("no such job")]
    NotFound,
    /// Only a FAILED job that kept its upload can run again.
    #[error(
        "the job is {}: only a FAILED job whose upload was kept can be retried",
        .0.as_str()
    )]
    NotRetryable(JobStatus),
    /// The job kept its upload, but the staged object is no longer there.
    #[error("the job's upload is no longer in storage: it cannot run again")]
    UploadGone,
    /// The database failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
