//! The codes a FAILED job carries (`../shared/spec/API.md` §4a), and the sentence each shows.
//!
//! A job's `error` is shown to clients as it is, so it holds only a sentence from here or one
//! built from safe facts (declared sizes, limits, format names); what really went wrong (paths,
//! hosts, SQL, decoder messages) goes to the logs with the job id when the failure is recorded.

use serde::{Deserialize, Serialize};

/// Why a job failed, as a stable machine-readable code; stored as the upper-case word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum JobErrorCode {
    /// The bytes are not a readable image (empty, not an image, truncated, corrupt).
    UnreadableImage,
    /// The header declares more pixels, or a longer side, than the limits allow.
    TooManyPixels,
    /// Decoding would take more memory than the work budget allows.
    OverBudget,
    /// An image kind or coding feature the pipeline does not handle.
    UnsupportedImage,
    /// The image work ran past the job's time limit.
    TimedOut,
    /// Object storage could not be read or written.
    StorageUnavailable,
    /// The job database could not be reached.
    QueueUnavailable,
    /// The content moderation provider could not judge the image.
    ModerationUnavailable,
    /// A defect or a failure with no better code (a crash, a lost worker).
    Internal,
}

impl JobErrorCode {
    /// Every code, in the contract's order.
    pub const ALL: [JobErrorCode; 9] = [
        JobErrorCode::UnreadableImage,
        JobErrorCode::TooManyPixels,
        JobErrorCode::OverBudget,
        JobErrorCode::UnsupportedImage,
        JobErrorCode::TimedOut,
        JobErrorCode::StorageUnavailable,
        JobErrorCode::QueueUnavailable,
        JobErrorCode::ModerationUnavailable,
        JobErrorCode::Internal,
    ];

    /// The stored and displayed word.
    pub fn as_str(self) -> &'static str {
        match self {
            JobErrorCode::UnreadableImage => "UNREADABLE_IMAGE",
            JobErrorCode::TooManyPixels => "TOO_MANY_PIXELS",
            JobErrorCode::OverBudget => "OVER_BUDGET",
            JobErrorCode::UnsupportedImage => "UNSUPPORTED_IMAGE",
            JobErrorCode::TimedOut => "TIMED_OUT",
            JobErrorCode::StorageUnavailable => "STORAGE_UNAVAILABLE",
            JobErrorCode::QueueUnavailable => "QUEUE_UNAVAILABLE",
            JobErrorCode::ModerationUnavailable => "MODERATION_UNAVAILABLE",
            JobErrorCode::Internal => "INTERNAL",
        }
    }

    /// Reads a stored word.
    pub fn parse(s: &str) -> Option<JobErrorCode> {
        JobErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The sentence shown for this code when nothing more specific (and safe) is known.
    pub fn sentence(self) -> &'static str {
        match self {
            JobErrorCode::UnreadableImage => {
                "The file could not be read as an image: its data is corrupt or incomplete."
            }
            JobErrorCode::TooManyPixels => "The image has more pixels than the limits allow.",
            JobErrorCode::OverBudget => {
                "Processing the image would take more memory than the work budget allows."
            }
            JobErrorCode::UnsupportedImage => {
                "The image uses a format or feature that is not supported."
            }
            JobErrorCode::TimedOut => "Processing the image took longer than the time limit.",
            JobErrorCode::StorageUnavailable => "Object storage was unavailable.",
            JobErrorCode::QueueUnavailable => "The job database was unavailable.",
            JobErrorCode::ModerationUnavailable => {
                "The content moderation service was unavailable."
            }
            JobErrorCode::Internal => {
                "The image could not be processed because of an internal error."
            }
        }
    }
}

impl std::fmt::Display for JobErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_match_serde() {
        for code in JobErrorCode::ALL {
            assert_eq!(JobErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
            assert!(!code.sentence().contains('/'), "{code}");
        }
        assert_eq!(JobErrorCode::parse("internal"), None);
    }
}
