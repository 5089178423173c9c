//! Content moderation: a stage between orientation and the variants.
//!
//! A [`Moderator`] scores a small upright copy of the image (label → score, e.g. `nsfw`); the
//! configured thresholds turn the scores into a [`Verdict`]. Two moderators ship: the open_nsfw
//! model run in-process ([`NsfwModerator`], cargo feature `nsfw`) and any service behind an
//! HTTP endpoint ([`HttpModerator`]). A failure of the moderator itself is a
//! [`ModerationError`], which the worker treats as transient.

mod http;
#[cfg(feature = "nsfw")]
pub mod nsfw;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use image::RgbImage;
use serde_json::json;

pub use http::HttpModerator;
#[cfg(feature = "nsfw")]
pub use nsfw::NsfwModerator;

use crate::config::{ModerationConfig, ModerationProvider};

/// Why a moderator could not give scores. Always transient for the job: the image may be fine
/// and the provider back soon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModerationError {
    /// The provider did not answer in time.
    #[error("moderation provider timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The provider could not be reached.
    #[error("moderation provider unreachable: {0}")]
    Unreachable(String),
    /// The provider answered with an error status.
    #[error("moderation provider answered HTTP {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// The provider's reply is not a verdict.
    #[error("moderation provider sent an unreadable reply: {0}")]
    Malformed(String),
    /// The local model failed to load or to run.
    #[error("moderation model error: {0}")]
    Model(String),
}

/// What a moderator says about one image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assessment {
    /// Label → score in 0–1. When present, the configured thresholds decide.
    pub scores: BTreeMap<String, f64>,
    /// The provider's own verdict, used when it sends no scores.
    pub flags: Option<Vec<String>>,
    /// The provider's own confidence in its verdict.
    pub confidence: Option<f64>,
}

/// Scores images. Implementations must be cheap to call concurrently.
#[async_trait]
pub trait Moderator: Send + Sync + 'static {
    /// The provider's name, recorded with every verdict.
    fn name(&self) -> &str;

    /// The longest side of the image this moderator wants.
    fn image_side(&self) -> u32;

    /// Scores one upright sRGB image of at most [`Moderator::image_side`] pixels a side.
    async fn assess(&self, image: &RgbImage) -> Result<Assessment, ModerationError>;
}

/// The outcome of moderating one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether the image is refused.
    pub flagged: bool,
    /// The labels that flagged it (empty when approved).
    pub flags: Vec<String>,
    /// The highest score among the flags, or among the watched labels when approved.
    pub confidence: f64,
    /// The moderator's name.
    pub provider: String,
    /// Every score the moderator gave.
    pub scores: BTreeMap<String, f64>,
}

impl Verdict {
    /// The word stored in `moderation_result`.
    pub fn result(&self) -> &'static str {
        if self.flagged { "REJECTED" } else { "APPROVED" }
    }

    /// The JSON stored as `moderation_details` and shown as `moderationDetails`.
    pub fn details(&self) -> serde_json::Value {
        json!({
            "flags": self.flags,
            "confidence": self.confidence,
            "provider": self.provider,
            "scores": self.scores,
        })
    }
}

/// The configured stage: a moderator, the source types it applies to, its thresholds.
#[derive(Clone)]
pub struct Moderation {
    moderator: Arc<dyn Moderator>,
    config: ModerationConfig,
}

impl Moderation {
    /// Builds the configured moderator; a local model is loaded (and checked) here, so a
    /// missing or wrong file stops start-up.
    ///
    /// # Errors
    /// [`ModerationError::Model`] naming the file and what is wrong with it.
    pub fn open(config: &ModerationConfig) -> Result<Moderation, ModerationError> {
        let moderator: Arc<dyn Moderator> = match &config.provider {
            #[cfg(feature = "nsfw")]
            ModerationProvider::Local { model } => Arc::new(NsfwModerator::load(model)?),
            #[cfg(not(feature = "nsfw"))]
            ModerationProvider::Local { .. } => {
                return Err(ModerationError::Model(
                    "this build has no local classifier (cargo feature `nsfw`)".into(),
                ));
            }
            ModerationProvider::Http { .. } => Arc::new(HttpModerator::new(&config.provider)?),
        };
        Ok(Moderation::with(moderator, config.clone()))
    }

    /// A stage around any moderator (for embedding a custom one).
    pub fn with(moderator: Arc<dyn Moderator>, config: ModerationConfig) -> Moderation {
        Moderation { moderator, config }
    }

    /// Whether uploads of `source_type` are moderated.
    pub fn applies_to(&self, source_type: &str) -> bool {
        self.config.source_types.iter().any(|st| st == source_type)
    }

    /// The longest side of the copy to moderate.
    pub fn image_side(&self) -> u32 {
        self.moderator.image_side()
    }

    /// Whether a moderator that keeps failing approves the image after the last attempt.
    pub fn fail_open(&self) -> bool {
        self.config.fail_open
    }

    /// Scores the image and applies the thresholds.
    ///
    /// # Errors
    /// The moderator's failure.
    pub async fn judge(&self, image: &RgbImage) -> Result<Verdict, ModerationError> {
        let assessment = self.moderator.assess(image).await?;
        Ok(decide(
            self.moderator.name(),
            assessment,
            &self.config.thresholds,
        ))
    }
}

/// Turns an assessment into a verdict. With scores, a label flags when its score reaches its
/// threshold; labels without a threshold never flag. Without scores, the provider's flags stand.
pub fn decide(
    provider: &str,
    assessment: Assessment,
    thresholds: &BTreeMap<String, f64>,
) -> Verdict {
    let Assessment {
        scores,
        flags,
        confidence,
    } = assessment;
    let (flags, confidence) = if scores.is_empty() {
        let flags = flags.unwrap_or_default();
        let confidence = confidence.unwrap_or(if flags.is_empty() { 0.0 } else { 1.0 });
        (flags, confidence)
    } else {
        let watched = || {
            scores
                .iter()
                .filter_map(|(label, score)| Some((label, *score, *thresholds.get(label)?)))
        };
        let flags: Vec<String> = watched()
            .filter(|(_, score, threshold)| score >= threshold)
            .map(|(label, ..)| label.clone())
            .collect();
        let confidence = watched()
            .filter(|(label, ..)| flags.is_empty() || flags.contains(label))
            .map(|(_, score, _)| score)
            .fold(0.0_f64, f64::max);
        (flags, confidence)
    };
    Verdict {
        flagged: !flags.is_empty(),
        flags,
        confidence,
        provider: provider.to_owned(),
        scores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thresholds() -> BTreeMap<String, f64> {
        BTreeMap::from([("nsfw".to_owned(), 0.8), ("violence".to_owned(), 0.5)])
    }

    fn scores(pairs: &[(&str, f64)]) -> Assessment {
        Assessment {
            scores: pairs.iter().map(|(l, s)| ((*l).to_owned(), *s)).collect(),
            ..Assessment::default()
        }
    }

    #[test]
    fn a_label_flags_at_its_threshold_and_unwatched_labels_never_do() {
        let v = decide("t", scores(&[("nsfw", 0.8), ("sfw", 0.99)]), &thresholds());
        assert!(v.flagged);
        assert_eq!((v.flags, v.confidence), (vec!["nsfw".to_owned()], 0.8));
        let v = decide("t", scores(&[("nsfw", 0.79), ("sfw", 0.99)]), &thresholds());
        assert!(!v.flagged, "sfw has no threshold: {v:?}");
        assert_eq!(v.confidence, 0.79);
    }

    #[test]
    fn without_scores_the_providers_flags_stand() {
        let a = Assessment {
            flags: Some(vec!["nudity".into()]),
            confidence: Some(0.97),
            ..Assessment::default()
        };
        let v = decide("svc", a, &thresholds());
        assert!(v.flagged);
        assert_eq!(v.details()["flags"], json!(["nudity"]));
        assert_eq!(v.details()["provider"], "svc");
        assert!(!decide("svc", Assessment::default(), &thresholds()).flagged);
    }
}
