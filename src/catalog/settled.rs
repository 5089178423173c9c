//! Reports of settled jobs (COMPLETE, REJECTED, FAILED), kept in memory for a moment.
//!
//! A settled job never changes again, but for its media being deleted and an operator's requeue
//! of a FAILED job that kept its upload. Clients poll the status
//! route in tight loops and often go on after the end, so repeated answers come from here
//! instead of the database (the status route went from 13,000 to about 50,000 requests per
//! second, BENCHMARKS.md). A delete through this process drops the entry at once; a delete
//! through another process, or a requeue, shows within [`TTL`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ids::JobId;
use crate::queue::JobReport;

/// How long an entry answers before the database is asked again.
pub const TTL: Duration = Duration::from_secs(1);
/// Most entries held; the least recently useful are dropped first.
const CAPACITY: usize = 10_000;

/// The cache: job id → (when it was read, the report).
pub struct SettledJobs {
    entries: quick_cache::sync::Cache<JobId, (Instant, Arc<JobReport>)>,
}

impl SettledJobs {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(CAPACITY),
        }
    }

    /// The report of a settled job read less than [`TTL`] ago.
    pub fn get(&self, id: &JobId) -> Option<Arc<JobReport>> {
        self.entries
            .get(id)
            .filter(|(read, _)| read.elapsed() < TTL)
            .map(|(_, report)| report)
    }

    /// Keeps `report` if its job has settled; pending and running jobs are never kept.
    pub fn remember(&self, report: &JobReport) {
        if report.job.status.is_terminal() {
            self.entries.insert(
                report.job.id.clone(),
                (Instant::now(), Arc::new(report.clone())),
            );
        }
    }

    /// Drops a job's entry (its media was deleted).
    pub fn forget(&self, id: &JobId) {
        self.entries.remove(id);
    }
}

impl Default for SettledJobs {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Job, JobStatus};

    fn report(status: JobStatus) -> JobReport {
        let job = Job::example(status);
        JobReport { job, media: None }
    }

    #[test]
    fn only_settled_jobs_are_kept_until_forgotten() {
        let cache = SettledJobs::new();
        for status in [JobStatus::Pending, JobStatus::Processing] {
            let pending = report(status);
            cache.remember(&pending);
            assert!(cache.get(&pending.job.id).is_none(), "{status:?}");
        }
        let done = report(JobStatus::Complete);
        cache.remember(&done);
        assert_eq!(cache.get(&done.job.id).as_deref(), Some(&done));
        cache.forget(&done.job.id);
        assert!(cache.get(&done.job.id).is_none());
    }
}
