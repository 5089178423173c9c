//! How an attempt can end without media, and what each ending means for the job.
//!
//! A failure carries two faces: the code and sentence the client sees (`../shared/spec/API.md`
//! §4a: never paths, hosts, SQL or debug text) and the detail for the logs. Pipeline errors
//! become failures here, in [`From<PipelineError>`], the one place that decides their codes.

use std::fmt::Display;
use std::time::Duration;

use crate::moderation::Verdict;
use crate::pipeline::PipelineError;
use crate::queue::{JobErrorCode, QueueError};

/// Why one attempt did not produce media. The variant decides the job's fate: a transient
/// failure is retried while attempts remain, an outage is waited out for the transient window
/// without using an attempt, a permanent one ends the job FAILED at once, a rejection ends it
/// REJECTED.
#[derive(Debug)]
pub enum Failure {
    /// A failure of the image work that may pass (a crash, the moderation provider down).
    Transient(Fault),
    /// Object storage or the job database is unavailable: nothing is wrong with the job.
    Outage(Fault),
    /// The same bytes will fail again (they do not decode, they are over the limits, ...).
    Permanent(Fault),
    /// Content moderation refused the image; nothing is stored.
    Rejected(Box<Verdict>),
}

/// What went wrong, for the client (code and sentence) and for the logs (detail).
#[derive(Debug)]
pub struct Fault {
    /// The contract's code.
    pub code: JobErrorCode,
    /// The sentence stored as the job's `error`: the code's own, or one built from safe facts.
    pub message: String,
    /// What really happened, for the logs only.
    pub detail: String,
}

impl Fault {
    /// A fault with the code's fixed sentence and `detail` for the logs.
    pub fn new(code: JobErrorCode, detail: impl Display) -> Fault {
        Fault {
            code,
            message: code.sentence().to_owned(),
            detail: detail.to_string(),
        }
    }
}

impl Failure {
    /// Object storage failed: waited out.
    pub fn storage(detail: impl Display) -> Failure {
        Failure::Outage(Fault::new(JobErrorCode::StorageUnavailable, detail))
    }

    /// The job database failed: waited out when it is unavailable, otherwise (a refused
    /// statement, a corrupt row) retried as any failure that may pass.
    pub fn queue(e: QueueError) -> Failure {
        let outage = e.is_outage();
        let fault = Fault::new(JobErrorCode::QueueUnavailable, e);
        if outage {
            Failure::Outage(fault)
        } else {
            Failure::Transient(fault)
        }
    }

    /// The moderation provider could not judge the image; worth another try.
    pub fn moderation(detail: impl Display) -> Failure {
        Failure::Transient(Fault::new(JobErrorCode::ModerationUnavailable, detail))
    }

    /// The claim was lost mid-attempt: whatever is recorded next is fenced off anyway.
    pub fn claim_lost(when: &str) -> Failure {
        Failure::Transient(Fault::new(
            JobErrorCode::Internal,
            format!("the claim was lost {when}"),
        ))
    }

    /// The pixel work ran past the job's time limit (the limit is a safe fact to show).
    pub fn timed_out(limit: Duration) -> Failure {
        let message = format!(
            "processing took longer than the {} s limit",
            limit.as_secs_f64()
        );
        Failure::Permanent(Fault {
            code: JobErrorCode::TimedOut,
            detail: message.clone(),
            message,
        })
    }

    /// A defect that trying again cannot fix.
    pub fn internal(detail: impl Display) -> Failure {
        Failure::Permanent(Fault::new(JobErrorCode::Internal, detail))
    }

    /// The code and sentence to record, `None` for a rejection.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            Failure::Transient(fault) | Failure::Outage(fault) | Failure::Permanent(fault) => {
                Some(fault)
            }
            Failure::Rejected(_) => None,
        }
    }

    /// Whether trying again can never help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Failure::Permanent(_) | Failure::Rejected(_))
    }
}

impl From<PipelineError> for Failure {
    /// The one mapping of pipeline errors to codes. Messages built only from format names,
    /// declared sizes and limits are shown as they are; any message that may quote a decoder,
    /// a walker, an encoder or a panic is replaced by the code's sentence.
    fn from(e: PipelineError) -> Failure {
        use JobErrorCode as C;
        let (code, safe) = match &e {
            PipelineError::Empty | PipelineError::Truncated { .. } => (C::UnreadableImage, true),
            // MIME types hold a slash; the code's sentence says enough.
            PipelineError::NotAnImage { .. }
            | PipelineError::Corrupt { .. }
            | PipelineError::Decode { .. } => (C::UnreadableImage, false),
            PipelineError::UnsupportedFormat { .. } => (C::UnsupportedImage, false),
            PipelineError::UnsupportedFeature { .. } | PipelineError::StripUnsupported { .. } => {
                (C::UnsupportedImage, true)
            }
            PipelineError::TooManyPixels { .. } => (C::TooManyPixels, true),
            PipelineError::TooManyFrames { .. } | PipelineError::OverBudget { .. } => {
                (C::OverBudget, true)
            }
            // Only asked for when the time limit passed (`attempt::off_thread`).
            PipelineError::Stopped => (C::TimedOut, false),
            PipelineError::Resize { .. }
            | PipelineError::Encode { .. }
            | PipelineError::Blurhash(_)
            | PipelineError::Panicked(_) => (C::Internal, false),
        };
        let detail = e.to_string();
        let fault = Fault {
            code,
            message: if safe {
                detail.clone()
            } else {
                code.sentence().to_owned()
            },
            detail,
        };
        if e.is_permanent() {
            Failure::Permanent(fault)
        } else {
            Failure::Transient(fault)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ImageFormat;

    #[test]
    fn decoder_text_is_kept_for_the_logs_only() {
        let failure = Failure::from(PipelineError::Panicked(
            "index out of bounds at /home/x/src/lib.rs:10".into(),
        ));
        let fault = failure.fault().unwrap();
        assert_eq!(fault.code, JobErrorCode::Internal);
        assert!(!fault.message.contains('/'), "{}", fault.message);
        assert!(fault.detail.contains("/home/x"), "{}", fault.detail);
        assert!(failure.is_permanent());
    }

    #[test]
    fn safe_facts_are_shown_as_sentences() {
        let failure = Failure::from(PipelineError::Truncated {
            format: ImageFormat::Jpeg,
        });
        let fault = failure.fault().unwrap();
        assert_eq!(fault.code, JobErrorCode::UnreadableImage);
        assert_eq!(fault.message, "truncated JPEG data");
    }
}
