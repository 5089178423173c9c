//! Clients waiting on a job: the status route's `?wait` and its server-sent events.
//!
//! One hub per catalogue follows the store's [`Changes`](crate::queue::Changes). For each job
//! somebody waits on, it keeps one `watch` channel holding the job's latest report; when the
//! job changes it reads the job once and hands the report to every waiter, so a thousand
//! clients on one job cost one read per change, and jobs nobody waits on cost nothing. After
//! [`Change::Any`] it asks the statuses of everything watched in one query and reads only the
//! jobs whose status moved.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use crate::ids::JobId;
use crate::queue::{Change, JobReport, JobStatus, JobStore, QueueError};

/// The latest report of a watched job, `None` until someone has read it.
type Latest = Option<Arc<JobReport>>;

/// Reads a job and its media: what the status route shows.
pub(super) async fn read_report(
    jobs: &dyn JobStore,
    id: &JobId,
) -> Result<Option<JobReport>, QueueError> {
    let Some(job) = jobs.get(id).await? else {
        return Ok(None);
    };
    let media = match &job.media_id {
        Some(media_id) => jobs.get_media(media_id).await?,
        None => None,
    };
    Ok(Some(JobReport { job, media }))
}

/// The watched jobs and the task that keeps their reports current.
pub(super) struct Hub {
    jobs: Arc<dyn JobStore>,
    watched: Mutex<HashMap<JobId, watch::Sender<Latest>>>,
    started: Once,
    /// Jobs read for waiters: one per change of a watched job, however many wait on it.
    reads: AtomicU64,
}

impl Hub {
    pub(super) fn new(jobs: Arc<dyn JobStore>) -> Hub {
        Hub {
            jobs,
            watched: Mutex::default(),
            started: Once::new(),
            reads: AtomicU64::new(0),
        }
    }

    /// Starts watching `id`. The hub's task starts with the first watch (inside the runtime),
    /// subscribed before the caller reads the job, so no change after that read is missed.
    pub(super) fn watch(self: &Arc<Hub>, id: &JobId) -> Watch {
        self.started.call_once(|| {
            let changes = self.jobs.changes().subscribe();
            tokio::spawn(follow(Arc::downgrade(self), changes));
        });
        let receiver = self
            .lock()
            .entry(id.clone())
            .or_insert_with(|| watch::Sender::new(None))
            .subscribe();
        Watch {
            hub: Arc::clone(self),
            id: id.clone(),
            receiver: Some(receiver),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, watch::Sender<Latest>>> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers `report` to the waiters of its job; an older one than they hold is ignored.
    fn offer(&self, report: JobReport) {
        if let Some(sender) = self.lock().get(&report.job.id) {
            let report = Arc::new(report);
            sender.send_if_modified(|latest| match latest {
                Some(held) if held.job.updated_at > report.job.updated_at => false,
                _ => {
                    *latest = Some(report);
                    true
                }
            });
        }
    }

    /// Reads job `id` again for its waiters.
    async fn refresh(&self, id: &JobId) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        match read_report(self.jobs.as_ref(), id).await {
            Ok(Some(report)) => self.offer(report),
            Ok(None) => {}
            Err(e) => tracing::warn!(job = %id, error = %e, "cannot read a watched job"),
        }
    }

    /// The watched jobs whose status differs from the one their waiters hold, by one query.
    async fn moved(&self) -> Vec<JobId> {
        let held: HashMap<JobId, Option<JobStatus>> = self
            .lock()
            .iter()
            .map(|(id, sender)| (id.clone(), sender.borrow().as_ref().map(|r| r.job.status)))
            .collect();
        if held.is_empty() {
            return Vec::new();
        }
        let ids: Vec<JobId> = held.keys().cloned().collect();
        match self.jobs.statuses(&ids).await {
            Ok(now) => now
                .into_iter()
                .filter(|(id, status)| held.get(id).is_some_and(|h| *h != Some(*status)))
                .map(|(id, _)| id)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the watched jobs");
                Vec::new()
            }
        }
    }
}

/// Keeps the watched jobs' reports current until the hub is dropped.
async fn follow(hub: Weak<Hub>, mut changes: broadcast::Receiver<Change>) {
    loop {
        let change = match changes.recv().await {
            Ok(change) => change,
            Err(RecvError::Lagged(_)) => Change::Any,
            Err(RecvError::Closed) => return,
        };
        let Some(hub) = hub.upgrade() else { return };
        let ids = match change {
            Change::Job(id) if hub.lock().contains_key(&id) => vec![id],
            Change::Job(_) => continue,
            Change::Any => hub.moved().await,
        };
        for id in ids {
            hub.refresh(&id).await;
        }
    }
}

/// One waiter's view of a job; stops watching when dropped.
pub struct Watch {
    hub: Arc<Hub>,
    id: JobId,
    receiver: Option<watch::Receiver<Latest>>,
}

impl Watch {
    /// The job's report read now (`None` for an unknown job), shared with the other waiters.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn current(&self) -> Result<Option<JobReport>, QueueError> {
        let report = read_report(self.hub.jobs.as_ref(), &self.id).await?;
        if let Some(report) = &report {
            self.hub.offer(report.clone());
        }
        Ok(report)
    }

    /// Waits for a report of the job newer than `seen` with another status.
    pub async fn next_after(&mut self, seen: &JobReport) -> Option<Arc<JobReport>> {
        let receiver = self.receiver.as_mut()?;
        let moved = |latest: &Latest| {
            latest.as_ref().is_some_and(|r| {
                r.job.updated_at >= seen.job.updated_at && r.job.status != seen.job.status
            })
        };
        let latest = receiver.wait_for(moved).await.ok()?;
        latest.clone()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watched = self.hub.lock();
        drop(self.receiver.take());
        if watched
            .get(&self.id)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            watched.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::DatabaseConfig;
    use crate::queue::NewJob;

    fn new_job(id: &JobId) -> NewJob {
        NewJob {
            id: id.clone(),
            source_type: "avatar".into(),
            source_id: "u1".into(),
            staging_key: format!("staging/{id}"),
            original_filename: None,
            mime_type: "image/png".into(),
            file_size: 1,
            max_attempts: 3,
            client: None,
            token_id: None,
            request_id: None,
            trace_parent: None,
            webhook_url: None,
        }
    }

    #[tokio::test]
    async fn a_thousand_waiters_on_one_job_cost_one_read_per_change() {
        let url = "sqlite::memory:";
        let jobs = crate::queue::connect(&DatabaseConfig::from_url(url).unwrap())
            .await
            .unwrap();
        let (watched, other) = (JobId::generate(), JobId::generate());
        jobs.insert(new_job(&watched), 1).await.unwrap();
        jobs.insert(new_job(&other), 2).await.unwrap();
        let hub = Arc::new(Hub::new(Arc::clone(&jobs)));
        let mut waiters: Vec<Watch> = (0..1000).map(|_| hub.watch(&watched)).collect();
        let bystanders: Vec<Watch> = (0..10).map(|_| hub.watch(&other)).collect();
        let seen = waiters[0].current().await.unwrap().unwrap();
        assert_eq!(seen.job.status, JobStatus::Pending);

        let claimed = jobs.claim("w", 10).await.unwrap().unwrap();
        assert_eq!(claimed.id, watched);
        for waiter in &mut waiters {
            let next = tokio::time::timeout(Duration::from_secs(10), waiter.next_after(&seen))
                .await
                .expect("a waiter was not woken")
                .unwrap();
            assert_eq!(next.job.status, JobStatus::Processing);
        }
        // One read for the change. SQLite's check for other processes' writes may see the
        // same commit and read once more each job whose waiters hold no report yet: this one
        // and the bystanders' (which never asked). Never one per waiter.
        let reads = hub.reads.load(Ordering::Relaxed);
        assert!((1..=3).contains(&reads), "{reads} reads");

        drop(waiters);
        drop(bystanders);
        assert!(
            hub.lock().is_empty(),
            "nothing is watched once the waiters are gone"
        );
    }
}
