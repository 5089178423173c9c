//! Worker-side maintenance and the pool's wake-up: orphaned staging objects are swept, live
//! ones kept; a queued job is picked up by an idle pool without waiting for a poll.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use image::RgbImage;
use reqwest::StatusCode;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use ximagepipeline::admin::RequeueError;
use ximagepipeline::moderation::{Assessment, ModerationError, Moderator};
use ximagepipeline::queue::{Failed, Job, JobErrorCode, JobStatus, now_ms};
use ximagepipeline::{MediaId, WorkerPool};

use crate::common::{TestServer, png};
use crate::queue::failed;

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
            failed(JobErrorCode::Internal, "gave up"),
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

/// A moderator that tells the test it was asked, then approves the image, or never answers
/// when `hangs` (a job that outlasts the shutdown timeout).
struct Witness {
    asked: Arc<Notify>,
    hangs: bool,
}

#[async_trait]
impl Moderator for Witness {
    fn name(&self) -> &str {
        "witness"
    }

    fn image_side(&self) -> u32 {
        64
    }

    async fn assess(&self, _image: &RgbImage) -> Result<Assessment, ModerationError> {
        self.asked.notify_one();
        if self.hangs {
            std::future::pending::<()>().await;
        }
        Ok(Assessment::default())
    }
}

/// A server with one worker loop whose moderation is a [`Witness`] (the configured service is
/// never called); `worker` is more of the `[worker]` table. Returns the server, the running
/// pool, its shutdown token and what the witness notifies when asked.
async fn witnessed_pool(
    worker: &str,
    hangs: bool,
) -> (TestServer, WorkerPool, CancellationToken, Arc<Notify>) {
    let server = TestServer::start_with(&format!(
        "[worker]\nconcurrency = 1\n{worker}\n\
         [moderation]\nprovider = \"http\"\nsource_types = [\"avatar\"]\n\
         [moderation.http]\nurl = \"http://127.0.0.1:9/never-called\"\n"
    ))
    .await;
    let asked = Arc::new(Notify::new());
    let witness = Witness {
        asked: Arc::clone(&asked),
        hangs,
    };
    let workers = server.pipeline.clone().with_moderator(Arc::new(witness));
    let shutdown = CancellationToken::new();
    let pool = workers.start_workers(shutdown.clone());
    (server, pool, shutdown, asked)
}

/// Waits until the witness is asked: the job is running. The deadline only turns a job that
/// never starts into a failure instead of a hang.
async fn until_asked(asked: &Notify, upload: &serde_json::Value) {
    tokio::time::timeout(Duration::from_secs(30), asked.notified())
        .await
        .unwrap_or_else(|_| panic!("the pool did not pick up the job: {upload}"));
}

#[tokio::test]
async fn an_idle_pool_is_woken_by_a_new_job() {
    // The safety-net poll is an hour and the pool is idle before the upload: only the wake-up
    // can make the job run in time.
    let (server, pool, shutdown, asked) = witnessed_pool("idle_poll_secs = 3600", false).await;
    pool.until_idle().await;
    let (_, body) = server.upload(png(32, 32), "avatar", "u1").await;
    until_asked(&asked, &body).await;
    // Stopping lets the job in hand finish; then its answer is final.
    shutdown.cancel();
    pool.join().await;
    let (code, status) = server.status_of(&body).await;
    assert_eq!(code, StatusCode::OK, "{status}");
    assert_eq!(status["status"], "COMPLETE", "{status}");
}

/// A job still running at the shutdown timeout is handed back at once: PENDING, due now, its
/// attempt not counted, no claim left to go stale.
#[tokio::test]
async fn a_job_cut_off_by_the_shutdown_timeout_is_handed_back() {
    let (server, pool, shutdown, asked) = witnessed_pool("shutdown_timeout_secs = 0", true).await;
    let (_, body) = server.upload(png(32, 32), "avatar", "u1").await;
    until_asked(&asked, &body).await;
    shutdown.cancel();
    pool.join().await;
    let id = ximagepipeline::JobId::from_string(body["jobId"].as_str().unwrap().to_owned());
    let job = server.admin.jobs().get(&id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.attempts, 0, "the attempt cut off is not counted");
    assert!(
        job.locked_by.is_none() && job.run_at <= now_ms(),
        "due at once: {job:?}"
    );
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
    // Writes the crash cut short: the local store's temporary files, which listings hide.
    let objects = server.dir.path().join("data/objects");
    for key in [
        keys.variant("avatar", "u1", &dead_media, "sm"),
        keys.original("avatar", "u1", &dead_media, "png"),
    ] {
        std::fs::write(objects.join(format!("{key}#7")), [0; 10]).unwrap();
    }
    assert_eq!(temporaries(&objects).len(), 2);
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
    assert_eq!(temporaries(&objects), Vec::<String>::new());
}

/// Every `name#N` temporary file under `folder`, as paths relative to it.
fn temporaries(folder: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut folders = vec![folder.to_path_buf()];
    while let Some(dir) = folders.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.to_string_lossy().contains('#') {
                found.push(path.strip_prefix(folder).unwrap().display().to_string());
            }
        }
    }
    found
}

/// A partial staging file (an upload a crash cut short) is swept once older than the grace
/// period; a younger one may be an upload still arriving and stays.
#[tokio::test]
async fn partial_staging_files_are_swept_after_the_grace() {
    let server = TestServer::start_with("[worker]\nstaging_grace_secs = 60").await;
    let staging = server.dir.path().join("data/objects/staging");
    std::fs::create_dir_all(&staging).unwrap();
    let old = staging.join("crashed#3");
    std::fs::write(&old, [1, 2, 3]).unwrap();
    let two_minutes_ago = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_minutes_ago)
        .unwrap();
    std::fs::write(staging.join("arriving#4"), [1, 2, 3]).unwrap();
    server.admin.sweep_staging().await;
    assert_eq!(temporaries(&staging), ["arriving#4"]);
}

/// A claim that goes stale on the job's last attempt ends FAILED; what that dead attempt
/// stored is removed, but the upload stays (a worker killed, say for memory, may live next
/// time), so the operator's requeue runs the job to COMPLETE.
#[tokio::test]
async fn a_job_failed_by_rescue_keeps_its_upload_for_a_requeue() {
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
        [job.staging_key.as_str()],
        "the dead attempt's variant is gone, the upload kept"
    );
    server.admin.sweep_staging().await;
    assert_eq!(
        server.stored_keys().await,
        [job.staging_key.as_str()],
        "the sweep keeps it"
    );

    let requeued = server.pipeline.requeue(&job.id).await.unwrap();
    assert_eq!(
        (requeued.status, requeued.attempts),
        (JobStatus::Pending, 0)
    );
    assert_eq!(server.drain().await, 1);
    let (code, status) = server.status_of(&body).await;
    assert_eq!(code, StatusCode::OK, "{status}");
    assert!(
        matches!(
            server.admin.requeue(&job.id).await,
            Err(RequeueError::NotRetryable(JobStatus::Complete))
        ),
        "a COMPLETE job is not requeued"
    );
}

/// A FAILED job whose upload was kept but has since gone (removed by hand) is refused clearly.
#[tokio::test]
async fn requeue_refuses_a_job_whose_upload_is_gone() {
    let server = TestServer::start().await;
    let (_, job, _) = dead_attempt(&server).await;
    let kept = Failed {
        code: JobErrorCode::StorageUnavailable,
        error: JobErrorCode::StorageUnavailable.sentence(),
        upload_kept: true,
    };
    assert!(
        server
            .admin
            .jobs()
            .fail(&job.id, "dead-worker", kept, now_ms())
            .await
            .unwrap()
    );
    server
        .admin
        .storage()
        .delete(&job.staging_key)
        .await
        .unwrap();
    assert!(matches!(
        server.admin.requeue(&job.id).await,
        Err(RequeueError::UploadGone)
    ));
    assert!(matches!(
        server
            .admin
            .requeue(&ximagepipeline::JobId::generate())
            .await,
        Err(RequeueError::NotFound)
    ));
}

/// The original is stored while the variants are made: when the variants then cannot be
/// stored, the original is removed with them, so a failed attempt leaves nothing behind.
#[tokio::test]
async fn an_original_stored_beside_failing_variants_is_removed() {
    let server = TestServer::start().await;
    let (code, body) = server.upload(png(300, 200), "avatar", "u1").await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    // A file where the variants' folder must be: every variant write fails, the original's not.
    let blocked = server.dir.path().join("data/objects/media");
    std::fs::write(&blocked, b"in the way").unwrap();
    server.drain().await;
    let (_, status) = server.status_of(&body).await;
    assert_ne!(status["status"], "COMPLETE", "{status}");
    std::fs::remove_file(&blocked).unwrap();
    let stored = server.stored_keys().await;
    assert!(
        stored.iter().all(|key| key.starts_with("staging/")),
        "only the staged upload is left: {stored:?}"
    );
}
