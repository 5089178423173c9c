//! How an attempt can end without media, and what each ending means for the job.

use crate::moderation::Verdict;

/// Why one attempt did not produce media. The variant decides the job's fate: a transient
/// failure is retried while attempts remain, a permanent one ends the job FAILED at once, a
/// rejection ends it REJECTED.
#[derive(Debug)]
pub enum Failure {
    /// Something that may pass (a time-out, storage or database trouble, the moderator down).
    Transient(String),
    /// The same bytes will fail again (they do not decode, they are over the limits, ...).
    Permanent(String),
    /// Content moderation refused the image; nothing is stored.
    Rejected(Box<Verdict>),
}

impl Failure {
    /// What went wrong, in words (stored as the job's `error`).
    pub fn message(&self) -> &str {
        match self {
            Failure::Transient(message) | Failure::Permanent(message) => message,
            Failure::Rejected(_) => "Content moderation failed",
        }
    }

    /// Whether trying again can never help.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Failure::Transient(_))
    }
}
