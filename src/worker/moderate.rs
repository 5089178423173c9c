//! The moderation step of an attempt: judge the small copy, then refuse, approve, or retry.
//!
//! A flagged image ends the attempt with a rejection (the job becomes REJECTED and nothing is
//! stored). A moderator that fails is a transient failure; on the last attempt the job fails
//! closed, unless `fail_open` approves it (logged, and recorded on the job).

use image::RgbImage;
use serde_json::json;

use super::{Context, Failure};
use crate::moderation::Moderation;
use crate::queue::Job;

/// Judges `thumbnail`; `Ok` means go on and make the variants.
pub(super) async fn check(
    context: &Context,
    worker: &str,
    job: &Job,
    moderation: &Moderation,
    thumbnail: &RgbImage,
) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let (result, details) = match moderation.judge(thumbnail).await {
        Ok(verdict) if verdict.flagged => return Err(Failure::Rejected(Box::new(verdict))),
        Ok(verdict) => (verdict.result(), verdict.details()),
        Err(e) if moderation.fail_open() && job.attempts >= job.max_attempts => {
            tracing::warn!(error = %e, "moderation failed on the last attempt; approved (fail_open)");
            (
                "APPROVED",
                json!({ "failOpen": true, "error": e.to_string() }),
            )
        }
        Err(e) => {
            return Err(Failure::moderation(format!(
                "content moderation failed: {e}"
            )));
        }
    };
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        result,
        "moderated"
    );
    match context
        .jobs
        .record_moderation(&job.id, worker, result, &details)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(Failure::claim_lost("during moderation")),
        Err(e) => Err(Failure::queue(e)),
    }
}
