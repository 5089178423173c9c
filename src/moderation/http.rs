//! A moderation service over HTTP: any provider can sit behind a small adapter.
//!
//! Request: `POST {url}` with the image as `image/jpeg` (upright, sRGB, at most `image_side`
//! pixels a side) and `Authorization: Bearer {token}` when a token is configured.
//! Reply (200, JSON), either or both of:
//! - `{"scores": {"nsfw": 0.93, "violence": 0.02}}`: per-label scores in 0–1, judged against
//!   the configured thresholds;
//! - `{"flagged": true, "flags": ["nudity"], "confidence": 0.97}`: the provider's own verdict,
//!   used when no scores are sent.
//!
//! A timeout, a connection failure, a non-2xx status or any other reply is a
//! [`ModerationError`], retried like any transient failure.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use image::RgbImage;
use serde::Deserialize;

use super::{Assessment, ModerationError, Moderator};
use crate::config::ModerationProvider;

/// JPEG quality of the copy sent: plenty for a classifier, a few tens of KB.
const JPEG_QUALITY: u8 = 90;
/// Longest error body quoted in messages.
const QUOTED_BODY: usize = 200;

/// Posts images to a configured URL and reads the verdict.
pub struct HttpModerator {
    client: reqwest::Client,
    url: String,
    timeout: Duration,
    bearer_token: Option<String>,
    image_side: u32,
}

/// The reply, as documented above.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    scores: Option<BTreeMap<String, f64>>,
    flagged: Option<bool>,
    flags: Option<Vec<String>>,
    confidence: Option<f64>,
}

impl HttpModerator {
    /// A client for the `Http` provider settings.
    ///
    /// # Errors
    /// [`ModerationError::Model`] when given other settings or the client cannot be built.
    pub fn new(provider: &ModerationProvider) -> Result<HttpModerator, ModerationError> {
        let ModerationProvider::Http {
            url,
            timeout,
            bearer_token,
            image_side,
        } = provider
        else {
            return Err(ModerationError::Model("not an HTTP provider".into()));
        };
        let client = reqwest::Client::builder()
            .timeout(*timeout)
            .build()
            .map_err(|e| ModerationError::Model(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpModerator {
            client,
            url: url.clone(),
            timeout: *timeout,
            bearer_token: bearer_token.clone(),
            image_side: *image_side,
        })
    }
}

#[async_trait]
impl Moderator for HttpModerator {
    fn name(&self) -> &str {
        "http"
    }

    fn image_side(&self) -> u32 {
        self.image_side
    }

    async fn assess(&self, image: &RgbImage) -> Result<Assessment, ModerationError> {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
            .encode_image(image)
            .map_err(|e| ModerationError::Model(format!("cannot encode the image: {e}")))?;
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "image/jpeg")
            .body(jpeg);
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| self.failure(e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.failure(e))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(ModerationError::Status {
                status: status.as_u16(),
                body: text.chars().take(QUOTED_BODY).collect(),
            });
        }
        let reply: Reply =
            serde_json::from_slice(&body).map_err(|e| ModerationError::Malformed(e.to_string()))?;
        assessment(reply)
    }
}

impl HttpModerator {
    fn failure(&self, e: reqwest::Error) -> ModerationError {
        if e.is_timeout() {
            ModerationError::Timeout(self.timeout)
        } else {
            ModerationError::Unreachable(e.to_string())
        }
    }
}

fn assessment(reply: Reply) -> Result<Assessment, ModerationError> {
    let scores = reply.scores.unwrap_or_default();
    if let Some((label, score)) = scores.iter().find(|(_, s)| !(0.0..=1.0).contains(*s)) {
        return Err(ModerationError::Malformed(format!(
            "score {score} of {label:?} is not in 0–1"
        )));
    }
    let flags = match reply.flagged {
        Some(true) => Some(
            reply
                .flags
                .filter(|f| !f.is_empty())
                .unwrap_or_else(|| vec!["flagged".to_owned()]),
        ),
        Some(false) => Some(Vec::new()),
        None if scores.is_empty() => {
            return Err(ModerationError::Malformed(
                "neither \"scores\" nor \"flagged\" in the reply".into(),
            ));
        }
        None => None,
    };
    Ok(Assessment {
        scores,
        flags,
        confidence: reply.confidence,
    })
}
