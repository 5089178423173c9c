//! The `[moderation]` table: which provider judges which source types, and how strictly.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawModeration;
use super::{ConfigError, SourceType, defaults, invalid};

/// Content moderation settings; `Config::moderation` is `None` when the table is absent.
#[derive(Debug, Clone)]
pub struct ModerationConfig {
    /// Who scores the images.
    pub provider: ModerationProvider,
    /// Source types whose uploads are moderated.
    pub source_types: Vec<String>,
    /// Label → score at or above which an image is flagged. Labels not listed never flag.
    pub thresholds: BTreeMap<String, f64>,
    /// After the last attempt, approve (and log) when the moderator itself keeps failing,
    /// instead of failing the job.
    pub fail_open: bool,
}

/// Where scores come from.
#[derive(Clone)]
pub enum ModerationProvider {
    /// The open_nsfw model run in-process (cargo feature `nsfw`).
    Local {
        /// The `.onnx` file `scripts/fetch-model` puts in place.
        model: PathBuf,
    },
    /// A moderation service over HTTP (see the README for the request and reply).
    Http {
        /// Where the image is POSTed.
        url: String,
        /// Longest wait for the reply.
        timeout: Duration,
        /// Sent as `Authorization: Bearer …` when set.
        bearer_token: Option<String>,
        /// Longest side of the image sent.
        image_side: u32,
    },
}

impl fmt::Debug for ModerationProvider {
    /// Never prints the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local { model } => f.debug_struct("Local").field("model", model).finish(),
            Self::Http { url, timeout, .. } => f
                .debug_struct("Http")
                .field("url", url)
                .field("timeout", timeout)
                .finish_non_exhaustive(),
        }
    }
}

/// Validates `[moderation]` against the configured source types.
pub fn read(
    raw: Option<RawModeration>,
    source_types: &BTreeMap<String, SourceType>,
) -> Result<Option<ModerationConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if let Some(unknown) = raw
        .source_types
        .iter()
        .find(|st| !source_types.contains_key(*st))
    {
        return Err(invalid(
            "moderation.source_types",
            format!("names an unknown source type {unknown:?}"),
        ));
    }
    let thresholds = raw.thresholds.unwrap_or_else(|| {
        defaults::MODERATION_THRESHOLDS
            .iter()
            .map(|(label, t)| ((*label).to_owned(), *t))
            .collect()
    });
    if let Some((label, _)) = thresholds.iter().find(|(_, t)| !(0.0..=1.0).contains(*t)) {
        return Err(invalid(
            format!("moderation.thresholds.{label}"),
            "must be between 0 and 1",
        ));
    }
    let provider = match raw.provider.as_str() {
        "local" => {
            let local = raw
                .local
                .ok_or_else(|| invalid("moderation.local", "is needed for provider = \"local\""))?;
            if cfg!(not(feature = "nsfw")) {
                return Err(invalid(
                    "moderation.provider",
                    "\"local\" needs a build with the `nsfw` cargo feature",
                ));
            }
            ModerationProvider::Local {
                model: PathBuf::from(local.model),
            }
        }
        "http" => {
            let http = raw
                .http
                .ok_or_else(|| invalid("moderation.http", "is needed for provider = \"http\""))?;
            if !(http.url.starts_with("http://") || http.url.starts_with("https://")) {
                return Err(invalid(
                    "moderation.http.url",
                    format!("must be an http(s) URL, got {:?}", http.url),
                ));
            }
            if !(http.timeout_secs > 0.0 && http.timeout_secs.is_finite()) {
                return Err(invalid(
                    "moderation.http.timeout_secs",
                    "must be a positive number of seconds",
                ));
            }
            if !(32..=4096).contains(&http.image_side) {
                return Err(invalid("moderation.http.image_side", "must be 32–4096"));
            }
            ModerationProvider::Http {
                url: http.url,
                timeout: Duration::from_secs_f64(http.timeout_secs),
                bearer_token: http.bearer_token,
                image_side: http.image_side,
            }
        }
        other => {
            return Err(invalid(
                "moderation.provider",
                format!("is {other:?}; use \"local\" or \"http\""),
            ));
        }
    };
    Ok(Some(ModerationConfig {
        provider,
        source_types: raw.source_types,
        thresholds,
        fail_open: raw.fail_open,
    }))
}
