//! Operator access: the raw job store and object storage, and the worker's maintenance steps run
//! on demand. For the command line, for operators' own tools and for tests.
//!
//! **This bypasses the rules the service keeps.** Writes through [`Admin::jobs`] are not fenced
//! by claims unless the call itself says so, and objects written or deleted through
//! [`Admin::storage`] are not recorded anywhere. A host application serving uploads never needs
//! it: [`crate::ImagePipeline`] has the operations a host uses.

use crate::queue::{Job, JobStore};
use crate::storage::Storage;
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

    /// Runs one job already claimed by `worker` to its recorded outcome.
    pub async fn run_claimed_job(&self, worker: &str, job: Job) {
        claim::run_job(&self.worker, worker, job).await;
    }

    /// Takes back claims whose worker stopped sending heartbeats (what the pool does every
    /// heartbeat interval).
    pub async fn rescue_stale_claims(&self) {
        rescue::stale_claims(&self.worker).await;
    }

    /// Removes staging objects no live job refers to (what the pool does every sweep interval).
    pub async fn sweep_staging(&self) {
        rescue::orphaned_staging(&self.worker).await;
    }
}
