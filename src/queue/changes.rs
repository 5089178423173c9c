//! What changed in the jobs table, for those waiting on a job (the status route's `?wait`,
//! server-sent events): a job's status, or, when a change may have been missed, anything.
//!
//! Each store publishes here: SQLite from its own writes, and from a cheap check of
//! `PRAGMA data_version` for writes of other processes; PostgreSQL from a trigger's NOTIFY, so
//! a job ended by a worker in another process wakes the API process its client waits on.

use tokio::sync::broadcast;

use crate::ids::JobId;

/// How often a SQLite store checks for other processes' writes (`PRAGMA data_version` on its
/// own connection): the longest a waiting client of an API process that runs no workers waits
/// past the end of its job.
pub const SQLITE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Changes a subscriber has not read yet before older ones are dropped (it then sees
/// [`Change::Any`]).
const BACKLOG: usize = 1024;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This job's status changed.
    Job(JobId),
    /// Any job may have changed: a notification connection was lost, another process wrote.
    Any,
}

/// The feed of one store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Changes(broadcast::Sender<Change>);

impl Default for Changes {
    fn default() -> Changes {
        Changes(broadcast::Sender::new(BACKLOG))
    }
}

impl Changes {
    /// Tells every subscriber; nobody listening is fine.
    pub fn publish(&self, change: Change) {
        let _ = self.0.send(change);
    }

    /// How many receivers there are: none, and nobody needs to look for changes.
    pub fn subscribers(&self) -> usize {
        self.0.receiver_count()
    }

    /// Every change from now on. A subscriber that falls [`BACKLOG`] behind gets
    /// `RecvError::Lagged`, to be read as [`Change::Any`].
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.0.subscribe()
    }
}
