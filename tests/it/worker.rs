//! Worker-side maintenance and the pool's wake-up: orphaned staging objects are swept, live
//! ones kept; a queued job is picked up by an idle pool without waiting for a poll.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use image::RgbImage;
use reqwest::StatusCode;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use ximagepipeline::MediaId;
use ximagepipeline::moderation::{Assessment, ModerationError, Moderator};
use ximagepipeline::queue::{Job, JobErrorCode, now_ms};

use crate::common::{TestServer, png};

#[tokio::test]
async fn orphaned_staging_objects_are_swept_and_live_ones_kept() {
    let server = TestServer::start_with("[worker]\nstaging_grace_secs = 0").await;
    let (_, body) = server.upload(png(8, 8), "avatar", "u1").await;
    let live = format!("staging/{}", body["jobId"].as_str().unwrap());
    let storage = server.admin.storage();
    storage
        .put("staging/crashed-before-insert", vec![1, 2, 3].into())
        .await
        .unwrap();
    server.admin.sweep_staging().await;
    assert_eq!(server.stored_keys().await, [live]);
}

/// The upload of a job that has ended is removed at once, whatever its age; a young staging
/// object with no job (an upload still arriving) is kept.
#[tokio::test]
async fn staging_of_ended_jobs_is_swept_at_once() {
    let server = TestServer::start().await;
    let (body, job, _) = dead_attempt(&server).await;
    let jobs = server.admin.jobs();
    assert!(
        jobs.fail(
            &job.id,
            "dead-worker",
            JobErrorCode::Internal,
            "gave up",
            now_ms()
        )
        .await
        .unwrap()
    );
    let storage = server.admin.storage();
    storage
        .put("staging/still-arriving", vec![1, 2, 3].into())
        .await
        .unwrap();
    let mut before = vec![
        format!("staging/{}", body["jobId"].as_str().unwrap()),
        "staging/still-arriving".to_owned(),
    ];
    before.sort();
    assert_eq!(server.stored_keys().await, before);
    server.admin.sweep_staging().await;
    assert_eq!(server.stored_keys().await, ["staging/still-arriving"]);
}

/// A moderator that approves every image and tells the test it was asked: a job mid-run.
struct Witness(Arc<Notify>);

#[async_trait]
impl Moderator for Witness {
    fn name(&self) -> &str {
        "witness"
    }

    fn image_side(&self) -> u32 {
        64
    }

    async fn assess(&self, _image: &RgbImage) -> Result<Assessment, ModerationError> {
        self.0.notify_one();
        Ok(Assessment::default())
    }
}

#[tokio::test]
async fn an_idle_pool_is_woken_by_a_new_job() {
    // The safety-net poll is an hour and the pool is idle before the upload: only the wake-up
    // can make the job run in time. The configured moderation service is never called: the
    // witness stands in for it.
    let server = TestServer::start_with(
        "[worker]\nidle_poll_secs = 3600\nconcurrency = 1\n\
         [moderation]\nprovider = \"http\"\nsource_types = [\"avatar\"]\n\
         [moderation.http]\nurl = \"http://127.0.0.1:9/never-called\"\n",
    )
    .await;
    let running = Arc::new(Notify::new());
    let workers = server
        .pipeline
        .clone()
        .with_moderator(Arc::new(Witness(Arc::clone(&running))));
    let shutdown = CancellationToken::new();
    let pool = workers.start_workers(shutdown.clone());
    pool.until_idle().await;
    let (_, body) = server.upload(png(32, 32), "avatar", "u1").await;
    // The pool is running the job once the witness is asked; the deadline only turns a missed
    // wake-up into a failure instead of an hour's wait.
    tokio::time::timeout(Duration::from_secs(30), running.notified())
        .await
        .unwrap_or_else(|_| panic!("the idle pool did not pick up the job: {body}"));
    // Stopping lets the job in hand finish; then its answer is final.
    shutdown.cancel();
    pool.join().await;
    let (code, status) = server.status_of(&body).await;
    assert_eq!(code, StatusCode::OK, "{status}");
    assert_eq!(status["status"], "COMPLETE", "{status}");
}

/// Uploads an avatar, then plays a worker that claims the job and starts an attempt under a
/// media id before it dies. Returns the upload's answer, the claimed job and that media id.
async fn dead_attempt(server: &TestServer) -> (serde_json::Value, Job, MediaId) {
    let (_, body) = server.upload(png(80, 80), "avatar", "u1").await;
    let jobs = server.admin.jobs();
    let job = jobs.claim("dead-worker", now_ms()).await.unwrap().unwrap();
    let media = MediaId::generate();
    assert!(
        jobs.start_attempt(&job.id, "dead-worker", &media)
            .await
            .unwrap()
    );
    (body, job, media)
}

#[tokio::test]
async fn objects_of_a_crashed_attempt_are_removed_by_the_next_one() {
    let server = TestServer::start().await;
    let (body, _job, dead_media) = dead_attempt(&server).await;
    let jobs = server.admin.jobs();
    let storage = server.admin.storage();
    let keys = storage.keys();
    storage
        .put(
            &keys.variant("avatar", "u1", &dead_media, "xs"),
            vec![0; 10].into(),
        )
        .await
        .unwrap();
    storage
        .put(
            &keys.original("avatar", "u1", &dead_media, "png"),
            vec![0; 10].into(),
        )
        .await
        .unwrap();
    // Its claim goes stale and is taken back; the next attempt completes the job.
    let stale_before = now_ms() + 1;
    assert_eq!(
        jobs.rescue_stale(stale_before, now_ms())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(server.drain().await, 1);
    let (code, status) = server.status_of(&body).await;
    assert_eq!(code, StatusCode::OK, "{status}");
    let media_id = status["media"]["id"].as_str().unwrap();
    let stored = server.stored_keys().await;
    assert_eq!(
        stored.len(),
        3,
        "xs, sm and the original of one media: {stored:?}"
    );
    assert!(stored.iter().all(|k| k.contains(media_id)), "{stored:?}");
}

/// A claim that goes stale on the job's last attempt ends FAILED, and what that dead attempt
/// stored is removed with the upload: nothing is left in storage.
#[tokio::test]
async fn a_job_failed_by_rescue_leaves_no_objects() {
    let server = TestServer::start_with("[worker]\nmax_attempts = 1").await;
    let (body, job, dead_media) = dead_attempt(&server).await;
    let jobs = server.admin.jobs();
    let storage = server.admin.storage();
    let key = storage.keys().variant("avatar", "u1", &dead_media, "xs");
    storage.put(&key, vec![0; 10].into()).await.unwrap();
    assert_eq!(
        server.stored_keys().await.len(),
        2,
        "the upload and one variant"
    );

    // Its last heartbeat was two minutes ago: stale under the default 60 s timeout.
    assert!(
        jobs.heartbeat(&job.id, "dead-worker", now_ms() - 120_000)
            .await
            .unwrap()
    );
    server.admin.rescue_stale_claims().await;

    let (code, status) = server.status_of(&body).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{status}");
    assert_eq!(status["status"], "FAILED", "{status}");
    assert_eq!(
        server.stored_keys().await,
        Vec::<String>::new(),
        "the dead attempt's variant and the upload are gone"
    );
}
