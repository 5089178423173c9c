//! The job store contract, as one suite of async fns over `&dyn JobStore`.
//!
//! Every backend runs the same functions (river's conformance suite): SQLite with a fresh
//! database file per test, PostgreSQL with a fresh schema per test. Time is a parameter of every
//! store call, so these tests move the clock instead of sleeping.

use std::collections::HashSet;
use std::sync::Arc;

use tempfile::TempDir;
use ximagepipeline::config::DatabaseConfig;
use ximagepipeline::queue::{
    Attempted, Change, DeliveryStatus, Failed, IdempotencyKey, Inserted, Job, JobCounts,
    JobErrorCode, JobStatus, JobStore, Media, MediaCursor, Millis, NewJob, PendingCaps, PgJobStore,
    SqliteJobStore, StoredVariant,
};
use ximagepipeline::{JobId, MediaId, TokenId};

use crate::backends::PgSchema;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A job for `source_id`, allowed `max_attempts` tries.
fn new_job(source_id: &str, max_attempts: u32) -> NewJob {
    let id = JobId::generate();
    NewJob {
        staging_key: format!("staging/{id}"),
        id,
        source_type: "gallery".into(),
        source_id: source_id.into(),
        original_filename: Some("photo.jpg".into()),
        mime_type: "image/jpeg".into(),
        file_size: 1234,
        max_attempts,
        client: None,
        token_id: None,
        request_id: None,
        trace_parent: None,
        webhook_url: None,
    }
}

/// Inserts a job at `now` and returns its id.
async fn insert(store: &dyn JobStore, source_id: &str, max_attempts: u32, now: Millis) -> JobId {
    let job = new_job(source_id, max_attempts);
    let id = job.id.clone();
    store.insert(job, now).await.unwrap();
    id
}

/// A media record for `job`, as a worker would describe it.
fn media_for(job: &Job, created_at: Millis) -> Media {
    let id = MediaId::generate();
    let key = |name: &str| {
        format!(
            "media/{}/{}/{id}/{name}.webp",
            job.source_type, job.source_id
        )
    };
    Media {
        variants: vec![
            (
                "md".into(),
                StoredVariant {
                    key: key("md"),
                    width: 640,
                    height: 427,
                },
            ),
            (
                "lg".into(),
                StoredVariant {
                    key: key("lg"),
                    width: 1280,
                    height: 853,
                },
            ),
        ],
        original_key: Some(format!(
            "originals/{}/{}/{id}/original.jpg",
            job.source_type, job.source_id
        )),
        id,
        job_id: job.id.clone(),
        source_type: job.source_type.clone(),
        source_id: job.source_id.clone(),
        width: 1500,
        height: 1000,
        aspect_ratio: "3:2".into(),
        blurhash: "LEHV6nWB2yk8pyo0adR*.7kCMdnj".into(),
        format: "jpg".into(),
        created_at,
    }
}

/// A FAILED ending with `code` and `error` whose upload goes.
pub fn failed(code: JobErrorCode, error: &'static str) -> Failed<'static> {
    Failed {
        code,
        error,
        upload_kept: false,
    }
}

/// The job, which must exist.
async fn get(store: &dyn JobStore, id: &JobId) -> Job {
    store
        .get(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("job {id} not found"))
}

/// Claims the next job, which must be there.
async fn claim(store: &dyn JobStore, worker: &str, now: Millis) -> Job {
    store
        .claim(worker, now)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{worker} found no job to claim at {now}"))
}

// ---------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------

pub async fn insert_then_get_is_pending(store: &dyn JobStore) {
    let job = new_job("user-1", 3);
    let expected = job.clone();
    store.insert(job, 1_000).await.unwrap();
    let got = get(store, &expected.id).await;
    assert_eq!(got.status, JobStatus::Pending);
    assert_eq!(got.source_type, expected.source_type);
    assert_eq!(got.source_id, expected.source_id);
    assert_eq!(got.staging_key, expected.staging_key);
    assert_eq!(got.original_filename, expected.original_filename);
    assert_eq!(got.mime_type, expected.mime_type);
    assert_eq!(got.file_size, expected.file_size);
    assert_eq!(got.max_attempts, 3);
    assert_eq!(got.attempts, 0);
    assert_eq!(
        (got.media_id, got.error, got.error_code),
        (None, None, None)
    );
    assert_eq!((got.locked_by, got.locked_at), (None, None));
    assert_eq!(
        (got.run_at, got.created_at, got.updated_at),
        (1_000, 1_000, 1_000)
    );
    assert_eq!(store.next_run_at().await.unwrap(), Some(1_000));

    assert_eq!(store.get(&JobId::generate()).await.unwrap(), None);
}

pub async fn claim_takes_the_oldest_due_job(store: &dyn JobStore) {
    assert_eq!(store.claim("w1", 0).await.unwrap(), None, "empty queue");
    let newer = insert(store, "b", 3, 2_000).await;
    let older = insert(store, "a", 3, 1_000).await;
    let future = insert(store, "c", 3, 10_000).await;

    let first = claim(store, "w1", 5_000).await;
    assert_eq!(first.id, older, "the oldest due job first");
    assert_eq!(first.status, JobStatus::Processing);
    assert_eq!(first.locked_by.as_deref(), Some("w1"));
    assert_eq!(first.locked_at, Some(5_000));
    assert_eq!(first.attempts, 1);
    assert_eq!(
        get(store, &older).await,
        first,
        "claim returns the row as stored"
    );

    assert_eq!(claim(store, "w2", 5_000).await.id, newer);
    assert_eq!(
        store.claim("w3", 5_000).await.unwrap(),
        None,
        "a job whose run_at is in the future is not claimed"
    );
    assert_eq!(get(store, &future).await.status, JobStatus::Pending);

    let late = claim(store, "w3", 10_000).await;
    assert_eq!(late.id, future, "claimable once the clock reaches run_at");
    assert_eq!(store.claim("w3", 20_000).await.unwrap(), None);
    assert_eq!(
        store.next_run_at().await.unwrap(),
        None,
        "nothing is pending"
    );
}

/// Takes an `Arc` (not `&dyn`) because the claimers run as separate tokio tasks.
pub async fn concurrent_claimers_take_each_job_once(store: Arc<dyn JobStore>) {
    const JOBS: usize = 60;
    const CLAIMERS: usize = 8;
    let mut inserted = HashSet::new();
    for n in 0..JOBS {
        inserted.insert(insert(store.as_ref(), &format!("s{n}"), 3, n as Millis).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLAIMERS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let worker = format!("claimer-{c}");
            let mut mine = Vec::new();
            while let Some(job) = store.claim(&worker, 1_000).await.unwrap() {
                assert_eq!(job.locked_by.as_deref(), Some(worker.as_str()));
                mine.push(job.id);
            }
            mine
        });
    }
    let mut claimed = Vec::new();
    while let Some(mine) = tasks.join_next().await {
        claimed.extend(mine.unwrap());
    }
    let unique: HashSet<_> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), JOBS, "every job claimed exactly once");
    assert_eq!(unique, inserted);
    for id in &inserted {
        let job = get(store.as_ref(), id).await;
        assert_eq!(
            (job.status, job.attempts),
            (JobStatus::Processing, 1),
            "{id}"
        );
    }
}

pub async fn heartbeat_only_for_the_holder(store: &dyn JobStore) {
    let id = insert(store, "a", 3, 1_000).await;
    claim(store, "w1", 2_000).await;
    assert!(store.heartbeat(&id, "w1", 3_000).await.unwrap());
    assert_eq!(get(store, &id).await.locked_at, Some(3_000));
    assert!(!store.heartbeat(&id, "w2", 4_000).await.unwrap());
    let job = get(store, &id).await;
    assert_eq!(
        (job.locked_by.as_deref(), job.locked_at),
        (Some("w1"), Some(3_000))
    );
    assert!(
        !store
            .heartbeat(&JobId::generate(), "w1", 4_000)
            .await
            .unwrap()
    );
}

pub async fn complete_is_fenced_and_happens_once(store: &dyn JobStore) {
    let id = insert(store, "a", 3, 1_000).await;
    let job = claim(store, "w1", 2_000).await;
    let media = media_for(&job, 2_500);

    assert!(
        !store.complete(&id, "w2", &media, 3_000).await.unwrap(),
        "not the holder"
    );
    assert_eq!(
        store.get_media(&media.id).await.unwrap(),
        None,
        "no media written"
    );
    assert!(
        store
            .list_media("gallery", "a", None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(get(store, &id).await.status, JobStatus::Processing);

    assert!(store.complete(&id, "w1", &media, 3_000).await.unwrap());
    let done = get(store, &id).await;
    assert_eq!(done.status, JobStatus::Complete);
    assert_eq!(done.media_id.as_ref(), Some(&media.id));
    assert_eq!((done.locked_by, done.locked_at), (None, None));
    assert_eq!(done.updated_at, 3_000);
    assert_eq!(
        store.get_media(&media.id).await.unwrap().as_ref(),
        Some(&media)
    );
    assert!(
        !store.heartbeat(&id, "w1", 3_500).await.unwrap(),
        "no claim after completion"
    );

    let again = media_for(&job, 4_000);
    assert!(
        !store.complete(&id, "w1", &again, 4_000).await.unwrap(),
        "completed once only"
    );
    assert_eq!(store.get_media(&again.id).await.unwrap(), None);
    assert_eq!(
        store.list_media("gallery", "a", None, 100).await.unwrap(),
        vec![media.clone()]
    );
    assert_eq!(get(store, &id).await.media_id, Some(media.id));
}

pub async fn fail_is_fenced(store: &dyn JobStore) {
    let id = insert(store, "a", 3, 1_000).await;
    claim(store, "w1", 2_000).await;
    assert!(
        !store
            .fail(
                &id,
                "w2",
                failed(JobErrorCode::UnreadableImage, "not mine"),
                3_000
            )
            .await
            .unwrap()
    );
    assert_eq!(get(store, &id).await.status, JobStatus::Processing);

    assert!(
        store
            .fail(
                &id,
                "w1",
                failed(JobErrorCode::UnreadableImage, "the bytes do not decode"),
                3_000
            )
            .await
            .unwrap()
    );
    let job = get(store, &id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.as_deref(), Some("the bytes do not decode"));
    assert_eq!(job.error_code, Some(JobErrorCode::UnreadableImage));
    assert_eq!((job.locked_by, job.locked_at), (None, None));
    assert_eq!(job.attempts, 1);

    assert!(
        !store
            .fail(
                &id,
                "w1",
                failed(JobErrorCode::UnreadableImage, "twice"),
                4_000
            )
            .await
            .unwrap(),
        "already ended"
    );
    assert!(
        !store
            .retry(
                &id,
                "w1",
                JobErrorCode::StorageUnavailable,
                "later",
                9_000,
                4_000
            )
            .await
            .unwrap(),
        "already ended"
    );
    assert_eq!(get(store, &id).await.status, JobStatus::Failed);
    assert_eq!(
        store.claim("w3", 100_000).await.unwrap(),
        None,
        "a FAILED job is not claimed"
    );
}

pub async fn retry_is_fenced_and_delays_the_job(store: &dyn JobStore) {
    let id = insert(store, "a", 3, 1_000).await;
    claim(store, "w1", 2_000).await;
    assert!(
        !store
            .retry(
                &id,
                "w2",
                JobErrorCode::StorageUnavailable,
                "not mine",
                9_000,
                3_000
            )
            .await
            .unwrap()
    );
    assert_eq!(get(store, &id).await.status, JobStatus::Processing);

    assert!(
        store
            .retry(
                &id,
                "w1",
                JobErrorCode::StorageUnavailable,
                "storage unreachable",
                9_000,
                3_000
            )
            .await
            .unwrap()
    );
    let job = get(store, &id).await;
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.run_at, 9_000);
    assert_eq!(
        job.error.as_deref(),
        Some("storage unreachable"),
        "the last failure is kept"
    );
    assert_eq!(job.error_code, Some(JobErrorCode::StorageUnavailable));
    assert_eq!((job.locked_by, job.locked_at), (None, None));
    assert_eq!(job.attempts, 1);
    assert_eq!(store.next_run_at().await.unwrap(), Some(9_000));

    assert!(
        !store.heartbeat(&id, "w1", 3_500).await.unwrap(),
        "the claim is given back"
    );
    assert_eq!(
        store.claim("w2", 8_999).await.unwrap(),
        None,
        "not due before run_at"
    );
    let again = claim(store, "w2", 9_000).await;
    assert_eq!((again.id, again.attempts), (id, 2));
    assert_eq!(again.locked_by.as_deref(), Some("w2"));
}

pub async fn rescue_takes_back_stale_claims_only(store: &dyn JobStore) {
    let stale = insert(store, "stale", 3, 100).await;
    let exhausted = insert(store, "exhausted", 1, 200).await;
    let beating = insert(store, "beating", 3, 300).await;
    let fresh = insert(store, "fresh", 3, 400).await;
    let waiting = insert(store, "waiting", 3, 500).await;
    assert_eq!(claim(store, "w1", 1_000).await.id, stale);
    assert_eq!(claim(store, "w2", 1_000).await.id, exhausted);
    assert_eq!(claim(store, "w3", 1_000).await.id, beating);
    assert!(store.heartbeat(&beating, "w3", 6_000).await.unwrap());
    assert_eq!(claim(store, "w4", 9_000).await.id, fresh);

    // Claims not refreshed since before 5 000 are stale at 10 000.
    let mut rescued: Vec<(JobId, JobStatus)> = store
        .rescue_stale(5_000, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.id, j.status))
        .collect();
    rescued.sort_by_key(|(id, _)| (id != &stale, id.clone()));
    assert_eq!(
        rescued,
        [
            (stale.clone(), JobStatus::Pending),
            (exhausted.clone(), JobStatus::Failed)
        ],
        "the rescued jobs, as they are now"
    );

    let job = get(store, &stale).await;
    assert_eq!(
        job.status,
        JobStatus::Pending,
        "an attempt is left: back to the queue"
    );
    assert_eq!((job.locked_by, job.locked_at), (None, None));
    assert!(job.run_at <= 10_000, "due at once, run_at = {}", job.run_at);
    assert_eq!(job.attempts, 1);

    let job = get(store, &exhausted).await;
    assert_eq!(
        job.status,
        JobStatus::Failed,
        "attempts >= max_attempts: given up"
    );
    assert!(
        job.error.as_deref().is_some_and(|e| !e.is_empty()),
        "{job:?}"
    );
    assert_eq!(job.error_code, Some(JobErrorCode::Internal), "{job:?}");
    assert!(
        job.upload_kept && job.holds_upload(),
        "a worker that died may not die next time: the upload stays for a requeue"
    );
    assert_eq!((job.locked_by, job.locked_at), (None, None));

    for (id, worker) in [(&beating, "w3"), (&fresh, "w4")] {
        let job = get(store, id).await;
        assert_eq!(
            job.status,
            JobStatus::Processing,
            "{worker}'s claim is alive"
        );
        assert_eq!(job.locked_by.as_deref(), Some(worker));
    }
    assert_eq!(
        get(store, &waiting).await.status,
        JobStatus::Pending,
        "untouched"
    );

    // The old holder lost its claim: nothing it reports changes the job.
    let old = get(store, &stale).await;
    let media = media_for(&old, 10_500);
    assert!(!store.heartbeat(&stale, "w1", 10_500).await.unwrap());
    assert!(!store.complete(&stale, "w1", &media, 10_500).await.unwrap());
    assert!(
        !store
            .fail(
                &stale,
                "w1",
                failed(JobErrorCode::UnreadableImage, "late"),
                10_500
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .retry(
                &stale,
                "w1",
                JobErrorCode::StorageUnavailable,
                "late",
                20_000,
                10_500
            )
            .await
            .unwrap()
    );
    assert_eq!(store.get_media(&media.id).await.unwrap(), None);
    assert!(
        !store
            .complete(&exhausted, "w2", &media, 10_500)
            .await
            .unwrap()
    );
    assert_eq!(get(store, &stale).await.status, JobStatus::Pending);

    // Another worker takes it (after the job that was due earlier), as its second attempt, and
    // finishes it.
    assert_eq!(claim(store, "w5", 11_000).await.id, waiting);
    let retaken = claim(store, "w5", 11_000).await;
    assert_eq!((retaken.id.clone(), retaken.attempts), (stale.clone(), 2));
    assert!(
        store
            .complete(&stale, "w5", &media_for(&retaken, 12_000), 12_000)
            .await
            .unwrap()
    );
    assert!(
        store.rescue_stale(5_000, 12_000).await.unwrap().is_empty(),
        "nothing stale is left"
    );
}

/// The fairness caps: pending (PENDING or PROCESSING) jobs per source and per client; a refused
/// insert writes nothing; ended jobs free their place; jobs without a client count per source.
pub async fn insert_capped_holds_the_caps(store: &dyn JobStore) {
    let caps = PendingCaps {
        source: 2,
        client: 3,
    };
    let job = |source: &str, client: Option<&str>| NewJob {
        client: client.map(str::to_owned),
        ..new_job(source, 1)
    };
    // Each insert a millisecond later, so the first job claimed is the first inserted.
    let clock = std::sync::atomic::AtomicI64::new(1_000);
    let insert = |job: NewJob| async {
        let id = job.id.clone();
        let now = clock.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let inserted = store.insert_capped(job, caps, now).await.unwrap();
        (inserted, id)
    };
    assert!(insert(job("a", Some("c1"))).await.0);
    assert!(insert(job("a", Some("c1"))).await.0);
    let (inserted, refused) = insert(job("a", Some("c2"))).await;
    assert!(!inserted, "source a has 2 pending");
    assert_eq!(store.get(&refused).await.unwrap(), None, "nothing written");
    assert!(insert(job("b", Some("c1"))).await.0, "another source");
    assert!(
        !insert(job("c", Some("c1"))).await.0,
        "client c1 has 3 pending"
    );
    assert!(insert(job("c", Some("c2"))).await.0, "another client");
    assert!(
        insert(job("c", None)).await.0,
        "no client: only the source counts"
    );
    assert!(!insert(job("c", None)).await.0, "source c has 2 pending");

    // A claimed job still counts; an ended one does not.
    let first = claim(store, "w1", 2_000).await;
    assert_eq!(first.source_id, "a");
    assert_eq!(first.client.as_deref(), Some("c1"));
    assert!(!insert(job("a", None)).await.0, "PROCESSING counts");
    assert!(
        store
            .fail(
                &first.id,
                "w1",
                failed(JobErrorCode::Internal, "gave up"),
                3_000
            )
            .await
            .unwrap()
    );
    assert!(
        insert(job("a", None)).await.0,
        "a FAILED job frees its place"
    );
    assert!(insert(job("d", Some("c1"))).await.0, "and its client's");
}

pub async fn list_media_is_newest_first(store: &dyn JobStore) {
    let mut made = Vec::new();
    for (source_id, created_at) in [("a", 1_000), ("a", 3_000), ("b", 4_000), ("a", 2_000)] {
        let id = insert(store, source_id, 3, created_at).await;
        let job = claim(store, "w1", created_at).await;
        let media = media_for(&job, created_at);
        assert!(store.complete(&id, "w1", &media, created_at).await.unwrap());
        made.push(media);
    }
    let ids = |list: Vec<Media>| list.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_media("gallery", "a", None, 100).await.unwrap()),
        [&made[1], &made[3], &made[0]].map(|m| m.id.clone()),
    );
    assert_eq!(
        ids(store.list_media("gallery", "b", None, 100).await.unwrap()),
        [made[2].id.clone()]
    );
    assert!(
        store
            .list_media("avatar", "a", None, 100)
            .await
            .unwrap()
            .is_empty(),
        "other source type"
    );
    assert!(
        store
            .list_media("gallery", "c", None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Completes a job of source `a` at `created_at` and returns its media.
async fn completed_media(store: &dyn JobStore, created_at: Millis) -> Media {
    let id = insert(store, "a", 3, created_at).await;
    let job = claim(store, "w1", created_at).await;
    let media = media_for(&job, created_at);
    assert!(store.complete(&id, "w1", &media, created_at).await.unwrap());
    media
}

/// Pages of two resume after their cursor: every media once, in order, also where several
/// share a millisecond, and media added during the walk (newer than every cursor) do not shift
/// the pages.
pub async fn media_pages_resume_after_their_cursor(store: &dyn JobStore) {
    let mut made = Vec::new();
    for created_at in [1_000, 2_000, 2_000, 2_000, 3_000, 4_000, 4_000] {
        made.push(completed_media(store, created_at).await);
    }
    let newest_first = |mut list: Vec<Media>| {
        list.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        list.into_iter().map(|m| m.id).collect::<Vec<_>>()
    };
    let expected = newest_first(made);
    let mut walked = Vec::new();
    let mut after: Option<MediaCursor> = None;
    loop {
        let page = store
            .list_media("gallery", "a", after.as_ref(), 2)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(MediaCursor::after(last));
        walked.extend(page.into_iter().map(|m| m.id));
        completed_media(store, 10_000 + walked.len() as Millis).await;
    }
    assert_eq!(walked, expected);
}

/// A shutdown hands back only the jobs of the worker it names: PENDING, due at once, the
/// attempt given back.
pub async fn release_hands_back_a_workers_jobs(store: &dyn JobStore) {
    let mine = insert(store, "a", 3, 1_000).await;
    let theirs = insert(store, "b", 3, 1_001).await;
    claim(store, "w1", 2_000).await;
    claim(store, "w2", 2_000).await;
    assert_eq!(store.release("w1", 3_000).await.unwrap(), 1);
    let job = get(store, &mine).await;
    assert_eq!(
        (job.status, job.attempts, job.locked_by, job.run_at),
        (JobStatus::Pending, 0, None, 3_000)
    );
    assert_eq!(get(store, &theirs).await.status, JobStatus::Processing);
    assert_eq!(store.release("w1", 3_000).await.unwrap(), 0, "nothing left");
}

pub async fn delete_media_once(store: &dyn JobStore) {
    let id = insert(store, "a", 3, 1_000).await;
    let job = claim(store, "w1", 1_000).await;
    let media = media_for(&job, 1_000);
    assert!(store.complete(&id, "w1", &media, 1_000).await.unwrap());

    assert!(store.delete_media(&media.id).await.unwrap());
    assert_eq!(store.get_media(&media.id).await.unwrap(), None);
    assert!(
        store
            .list_media("gallery", "a", None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store.delete_media(&media.id).await.unwrap(),
        "already gone"
    );
    assert!(
        !store.delete_media(&MediaId::generate()).await.unwrap(),
        "never existed"
    );
}

pub async fn insert_wakes_workers(store: &dyn JobStore) {
    let mut wake_ups = store.wake_ups();
    wake_ups.borrow_and_update();
    for (n, source) in ["a", "b"].into_iter().enumerate() {
        insert(store, source, 3, 1_000 * n as Millis).await;
        // Resolves as soon as the wake-up arrives (PostgreSQL: through LISTEN/NOTIFY); the
        // timeout only turns a regression into a failure instead of a hang.
        tokio::time::timeout(WAKE_DEADLINE, wake_ups.changed())
            .await
            .unwrap_or_else(|_| panic!("no wake-up after insert {n}"))
            .unwrap();
        wake_ups.borrow_and_update();
    }
}

pub async fn retry_and_rescue_wake_workers(store: &dyn JobStore) {
    let mut wake_ups = store.wake_ups();
    let id = insert(store, "a", 3, 1_000).await;
    claim(store, "w1", 2_000).await;
    wake_ups.borrow_and_update();
    assert!(
        store
            .retry(
                &id,
                "w1",
                JobErrorCode::StorageUnavailable,
                "boom",
                5_000,
                3_000
            )
            .await
            .unwrap()
    );
    tokio::time::timeout(WAKE_DEADLINE, wake_ups.changed())
        .await
        .expect("no wake-up after a retry: the sleepers must re-read when it is due")
        .unwrap();
    claim(store, "w2", 6_000).await;
    wake_ups.borrow_and_update();
    assert_eq!(store.rescue_stale(7_000, 8_000).await.unwrap().len(), 1);
    tokio::time::timeout(WAKE_DEADLINE, wake_ups.changed())
        .await
        .expect("no wake-up after a rescue")
        .unwrap();
}

/// How long a wake-up may take to arrive before the test fails.
const WAKE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// With `migrate_on_start = false` a store refuses a schema that is behind, naming the command
/// that fixes it; once migrated, it opens.
pub async fn unmigrated_database_is_refused_until_migrated(url: &str) {
    let mut config = DatabaseConfig::from_url(url).unwrap();
    config.migrate_on_start = false;
    let err = ximagepipeline::queue::connect(&config)
        .await
        .err()
        .expect("an empty database must be refused");
    assert!(
        err.to_string().contains("ximagepipeline migrate"),
        "the error must say how to fix it: {err}"
    );
    config.migrate_on_start = true;
    ximagepipeline::queue::connect(&config).await.unwrap();
    config.migrate_on_start = false;
    let store = ximagepipeline::queue::connect(&config).await.unwrap();
    assert!(store.next_run_at().await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Backends: SQLite, one database file per test; PostgreSQL, one schema per test
// ---------------------------------------------------------------------------------------------

async fn open_sqlite() -> (TempDir, SqliteJobStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/q.db", dir.path().display());
    let store = SqliteJobStore::connect(&DatabaseConfig::from_url(&url).unwrap())
        .await
        .unwrap();
    (dir, store)
}

async fn open_postgres() -> (PgSchema, PgJobStore) {
    let schema = PgSchema::create().await;
    let store = PgJobStore::connect(&DatabaseConfig::from_url(&schema.url()).unwrap())
        .await
        .unwrap();
    (schema, store)
}

/// One module per backend, each running every function of the suite.
macro_rules! conformance {
    ([$($backend:ident => $open:ident),*], $names:tt) => {
        $( conformance!(@backend $backend, $open, $names); )*
    };
    (@backend $backend:ident, $open:ident, [$($name:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let (_guard, store) = super::$open().await;
                    super::$name(&store).await;
                }
            )*

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_claimers_take_each_job_once() {
                let (_guard, store) = super::$open().await;
                super::concurrent_claimers_take_each_job_once(std::sync::Arc::new(store)).await;
            }
        }
    };
}

/// An outage gives the attempt back and is dated from its first deferral; a counted retry
/// ends it. A FAILED job that kept its upload can be requeued once, as new; no other job can.
pub async fn defer_gives_attempts_back_and_requeue_reruns_kept_uploads(store: &dyn JobStore) {
    use JobErrorCode::{QueueUnavailable, StorageUnavailable, TimedOut};
    let id = insert(store, "a", 3, 1_000).await;
    assert_eq!(claim(store, "w1", 1_000).await.attempts, 1);
    let sentence = StorageUnavailable.sentence();
    assert!(
        !store
            .defer(&id, "w2", StorageUnavailable, sentence, 5_000, 2_000)
            .await
            .unwrap(),
        "fenced by the claim"
    );
    assert!(
        store
            .defer(&id, "w1", StorageUnavailable, sentence, 5_000, 2_000)
            .await
            .unwrap()
    );
    let job = get(store, &id).await;
    assert_eq!(
        (job.status, job.attempts, job.outage_since, job.run_at),
        (JobStatus::Pending, 0, Some(2_000), 5_000)
    );
    assert_eq!(job.error_code, Some(StorageUnavailable));
    assert!(store.claim("w1", 4_999).await.unwrap().is_none(), "not due");

    assert_eq!(claim(store, "w1", 5_000).await.attempts, 1);
    let sentence = QueueUnavailable.sentence();
    assert!(
        store
            .defer(&id, "w1", QueueUnavailable, sentence, 9_000, 6_000)
            .await
            .unwrap()
    );
    let job = get(store, &id).await;
    assert_eq!(
        (job.attempts, job.outage_since),
        (0, Some(2_000)),
        "the outage is dated from its start"
    );

    assert_eq!(claim(store, "w1", 9_000).await.attempts, 1);
    let sentence = TimedOut.sentence();
    assert!(
        store
            .retry(&id, "w1", TimedOut, sentence, 10_000, 9_500)
            .await
            .unwrap()
    );
    let job = get(store, &id).await;
    assert_eq!(
        (job.attempts, job.outage_since),
        (1, None),
        "a retry counts and ends the outage"
    );
    assert!(
        store.requeue(&id, 10_000).await.unwrap().is_none(),
        "only a FAILED job is requeued"
    );

    assert_eq!(claim(store, "w1", 10_000).await.attempts, 2);
    let kept = Failed {
        code: StorageUnavailable,
        error: StorageUnavailable.sentence(),
        upload_kept: true,
    };
    assert!(store.fail(&id, "w1", kept, 10_500).await.unwrap());
    let job = get(store, &id).await;
    assert_eq!((job.status, job.upload_kept), (JobStatus::Failed, true));
    assert!(job.holds_upload());

    let requeued = store.requeue(&id, 11_000).await.unwrap().expect("requeued");
    assert_eq!(requeued, get(store, &id).await, "the row as it is now");
    assert_eq!(
        (
            requeued.status,
            requeued.attempts,
            requeued.upload_kept,
            requeued.outage_since,
            requeued.run_at
        ),
        (JobStatus::Pending, 0, false, None, 11_000)
    );
    assert_eq!((requeued.error, requeued.error_code), (None, None));
    assert!(store.requeue(&id, 12_000).await.unwrap().is_none(), "once");

    // A job that failed for good has lost its upload: never requeued.
    claim(store, "w1", 12_000).await;
    let gone = failed(JobErrorCode::UnreadableImage, "the bytes do not decode");
    assert!(store.fail(&id, "w1", gone, 12_500).await.unwrap());
    assert!(!get(store, &id).await.holds_upload());
    assert!(store.requeue(&id, 13_000).await.unwrap().is_none());
}

/// A single-use token is spent once; after its expiry the tidy step forgets it. A job records
/// the token it came with.
pub async fn tokens_are_spent_once_and_forgotten_after_expiry(store: &dyn JobStore) {
    let token = TokenId::generate();
    assert!(store.spend_token(&token, 5_000).await.unwrap());
    assert!(!store.spend_token(&token, 5_000).await.unwrap(), "spent");
    assert!(
        store
            .spend_token(&TokenId::generate(), 5_000)
            .await
            .unwrap()
    );
    store.tidy(5_000).await.unwrap();
    assert!(
        !store.spend_token(&token, 5_000).await.unwrap(),
        "kept until it expires"
    );
    store.tidy(5_001).await.unwrap();
    assert!(
        store.spend_token(&token, 9_000).await.unwrap(),
        "forgotten once expired"
    );

    let job = NewJob {
        token_id: Some(token.clone()),
        ..new_job("a", 1)
    };
    let id = job.id.clone();
    store.insert(job, 1_000).await.unwrap();
    assert_eq!(get(store, &id).await.token_id, Some(token));
    let id = insert(store, "a", 1, 1_000).await;
    assert_eq!(get(store, &id).await.token_id, None);
}

/// The operator's reads: counts by state with the oldest pending job, a newest-first list by
/// state, the readiness write; and retention removes only ended jobs older than its cut-off,
/// leaving their media.
pub async fn operators_count_list_and_forget_jobs(store: &dyn JobStore) {
    assert_eq!(store.count_jobs().await.unwrap(), JobCounts::default());
    store.check_ready(500).await.unwrap();
    let old = insert(store, "a", 1, 1_000).await;
    let job = claim(store, "w1", 1_000).await;
    let media = media_for(&job, 1_500);
    assert!(store.complete(&old, "w1", &media, 2_000).await.unwrap());
    let broken = insert(store, "a", 1, 3_000).await;
    claim(store, "w1", 3_000).await;
    let failure = failed(JobErrorCode::UnreadableImage, "bad");
    assert!(store.fail(&broken, "w1", failure, 4_000).await.unwrap());
    let pending = insert(store, "a", 1, 5_000).await;
    let newer = insert(store, "b", 1, 6_000).await;

    let counts = store.count_jobs().await.unwrap();
    let mut by_status = counts.by_status.clone();
    by_status.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        by_status,
        [
            (JobStatus::Complete, 1),
            (JobStatus::Failed, 1),
            (JobStatus::Pending, 2)
        ]
    );
    assert_eq!(counts.oldest_pending, Some(5_000));

    let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let all = store.list_jobs(None, 10).await.unwrap();
    assert_eq!(
        ids(all),
        [newer.clone(), pending.clone(), broken.clone(), old.clone()]
    );
    let some = store.list_jobs(Some(JobStatus::Pending), 1).await.unwrap();
    assert_eq!(ids(some), [newer]);

    // Ended before 3,000: only the COMPLETE job (ended at 2,000); FAILED ended at 4,000.
    assert_eq!(store.forget_ended_jobs(3_000).await.unwrap(), 1);
    assert!(store.get(&old).await.unwrap().is_none());
    assert_eq!(
        store.get_media(&media.id).await.unwrap().map(|m| m.id),
        Some(media.id.clone()),
        "media stay"
    );
    assert_eq!(
        store.forget_ended_jobs(i64::MAX).await.unwrap(),
        1,
        "the FAILED one"
    );
    assert!(
        store.get(&pending).await.unwrap().is_some(),
        "never a pending job"
    );
    store.check_ready(7_000).await.unwrap();
}

/// An idempotency key is recorded with its job: a repeat of the same source and file replays
/// the first job, another source or file is told the key is reused, and nothing is written
/// either way; a capped insert records no key; an expired key is free again, and `tidy`
/// forgets it.
pub async fn idempotency_keys_replay_refuse_and_expire(store: &dyn JobStore) {
    let key = |sha: &str, expires_at| IdempotencyKey {
        scope: "key:abc".into(),
        key: "order-1".into(),
        sha256: sha.into(),
        expires_at,
    };
    let first = new_job("a", 1);
    let first_id = first.id.clone();
    let caps = PendingCaps::NONE;
    let live = key("f00d", 10_000);
    assert_eq!(
        store
            .insert_keyed(first, caps, Some(&live), 1_000)
            .await
            .unwrap(),
        Inserted::Job
    );
    let repeat = new_job("a", 1);
    let repeat_id = repeat.id.clone();
    assert_eq!(
        store
            .insert_keyed(repeat, caps, Some(&live), 2_000)
            .await
            .unwrap(),
        Inserted::Replay(first_id.clone())
    );
    assert!(store.get(&repeat_id).await.unwrap().is_none());
    for (job, sha) in [(new_job("b", 1), "f00d"), (new_job("a", 1), "beef")] {
        assert_eq!(
            store
                .insert_keyed(job, caps, Some(&key(sha, 10_000)), 3_000)
                .await
                .unwrap(),
            Inserted::KeyReused
        );
    }
    // Another caller's same key is another upload.
    let other = IdempotencyKey {
        scope: "key:def".into(),
        ..live.clone()
    };
    assert_eq!(
        store
            .insert_keyed(new_job("a", 1), caps, Some(&other), 3_000)
            .await
            .unwrap(),
        Inserted::Job
    );

    // Capped: the key is not taken.
    let tight = PendingCaps {
        source: 1,
        client: u64::MAX,
    };
    let fresh = IdempotencyKey {
        key: "order-2".into(),
        ..live.clone()
    };
    assert_eq!(
        store
            .insert_keyed(new_job("a", 1), tight, Some(&fresh), 4_000)
            .await
            .unwrap(),
        Inserted::Capped
    );
    assert_eq!(
        store
            .insert_keyed(new_job("c", 1), tight, Some(&fresh), 4_000)
            .await
            .unwrap(),
        Inserted::Job
    );

    // Past its expiry the key makes a new job.
    let later = new_job("b", 1);
    let later_id = later.id.clone();
    assert_eq!(
        store
            .insert_keyed(later, caps, Some(&key("beef", 30_000)), 10_000)
            .await
            .unwrap(),
        Inserted::Job
    );
    assert_eq!(
        store
            .insert_keyed(new_job("b", 1), caps, Some(&key("beef", 30_000)), 11_000)
            .await
            .unwrap(),
        Inserted::Replay(later_id)
    );
    store.tidy(40_000).await.unwrap();
    assert_eq!(
        store
            .insert_keyed(new_job("z", 1), caps, Some(&key("0", 50_000)), 40_000)
            .await
            .unwrap(),
        Inserted::Job,
        "forgotten"
    );
}

/// Every status change of a job is published on the store's feed: claim, retry, complete.
pub async fn status_changes_are_published(store: &dyn JobStore) {
    let mut changes = store.changes().subscribe();
    let id = insert(store, "a", 3, 1_000).await;
    let job = claim(store, "w1", 1_000).await;
    assert!(
        store
            .retry(&id, "w1", JobErrorCode::TimedOut, "slow", 1_000, 1_100)
            .await
            .unwrap()
    );
    claim(store, "w1", 1_200).await;
    assert!(
        store
            .complete(&id, "w1", &media_for(&job, 1_300), 1_400)
            .await
            .unwrap()
    );
    let mut seen = 0;
    while seen < 4 {
        let change = tokio::time::timeout(std::time::Duration::from_secs(10), changes.recv())
            .await
            .expect("a status change was not published")
            .unwrap();
        match change {
            Change::Job(changed) => {
                assert_eq!(changed, id);
                seen += 1;
            }
            Change::Any => {}
        }
    }
}

/// The outbox: a job uploaded with a webhook URL gets one delivery per end, written with the
/// end (complete, fail, a stale claim's last attempt), none for a job without one; a claim
/// leases the earliest due delivery and counts the attempt; settling is fenced by the attempt;
/// a retry is due again at its time; an operator's resend makes a settled one due again.
pub async fn webhook_deliveries_are_written_with_the_end_and_leased(store: &dyn JobStore) {
    let with_hook = |url: &str| NewJob {
        webhook_url: Some(url.into()),
        ..new_job("a", 1)
    };
    let completed = with_hook("");
    let completed_id = completed.id.clone();
    store.insert(completed, 1_000).await.unwrap();
    let job = claim(store, "w1", 1_000).await;
    assert!(
        store.claim_delivery(1_000, 9_000).await.unwrap().is_none(),
        "not ended yet"
    );
    assert!(
        store
            .complete(&completed_id, "w1", &media_for(&job, 1_100), 1_200)
            .await
            .unwrap()
    );

    let failed_job = with_hook("https://hooks.example.com/x");
    let failed_id = failed_job.id.clone();
    store.insert(failed_job, 2_000).await.unwrap();
    claim(store, "w1", 2_000).await;
    let failure = failed(JobErrorCode::UnreadableImage, "bad");
    assert!(store.fail(&failed_id, "w1", failure, 2_100).await.unwrap());

    let silent = insert(store, "a", 1, 3_000).await;
    let job = claim(store, "w1", 3_000).await;
    assert!(
        store
            .complete(&silent, "w1", &media_for(&job, 3_100), 3_200)
            .await
            .unwrap()
    );

    // A claim whose worker died on its last attempt: FAILED by the rescue, and sent.
    let stale = with_hook("");
    let stale_id = stale.id.clone();
    store.insert(stale, 4_000).await.unwrap();
    claim(store, "dead", 4_000).await;
    store.rescue_stale(5_000, 6_000).await.unwrap();

    let all = store.list_deliveries(None, 10).await.unwrap();
    let ends: Vec<(JobId, &str, &str)> = all
        .iter()
        .map(|d| (d.job_id.clone(), d.event.as_str(), d.url.as_str()))
        .collect();
    assert_eq!(
        ends,
        [
            (stale_id.clone(), "job.failed", ""),
            (
                failed_id.clone(),
                "job.failed",
                "https://hooks.example.com/x"
            ),
            (completed_id.clone(), "job.completed", ""),
        ]
    );
    assert!(
        all.iter()
            .all(|d| d.status == DeliveryStatus::Pending && d.attempts == 0)
    );

    // Leased in order of their end; the lease hides it from other claims until it runs out.
    let first = store.claim_delivery(7_000, 20_000).await.unwrap().unwrap();
    assert_eq!(
        (first.job_id.clone(), first.attempts),
        (completed_id.clone(), 1)
    );
    let second = store.claim_delivery(7_000, 20_000).await.unwrap().unwrap();
    assert_eq!(second.job_id, failed_id);
    let retry = Attempted::Retry {
        at: 30_000,
        error: "the receiver answered 500".into(),
    };
    assert!(store.settle_delivery(&second, &retry, 7_100).await.unwrap());
    assert!(
        !store
            .settle_delivery(&second, &Attempted::Delivered, 7_200)
            .await
            .unwrap(),
        "a settled attempt is settled once"
    );
    assert!(
        store
            .settle_delivery(&first, &Attempted::Delivered, 7_300)
            .await
            .unwrap()
    );
    let third = store.claim_delivery(7_000, 20_000).await.unwrap().unwrap();
    assert_eq!(third.job_id, stale_id);
    assert!(store.claim_delivery(7_000, 20_000).await.unwrap().is_none());
    assert_eq!(store.next_delivery_at().await.unwrap(), Some(20_000));
    // The lease ran out: claimed again, as attempt 2; the old attempt's outcome is refused.
    let again = store.claim_delivery(20_000, 40_000).await.unwrap().unwrap();
    assert_eq!((again.id.clone(), again.attempts), (third.id.clone(), 2));
    assert!(
        !store
            .settle_delivery(&third, &Attempted::Delivered, 20_100)
            .await
            .unwrap()
    );
    let gave_up = Attempted::GaveUp {
        error: "timed out".into(),
    };
    assert!(
        store
            .settle_delivery(&again, &gave_up, 20_200)
            .await
            .unwrap()
    );

    let of_job = store.list_deliveries(Some(&failed_id), 10).await.unwrap();
    assert_eq!(of_job.len(), 1);
    assert_eq!(of_job[0].next_attempt_at, 30_000);
    assert_eq!(
        of_job[0].last_error.as_deref(),
        Some("the receiver answered 500")
    );
    let done = store.list_deliveries(Some(&completed_id), 1).await.unwrap();
    assert_eq!(
        (done[0].status, done[0].delivered_at),
        (DeliveryStatus::Delivered, Some(7_300))
    );

    assert!(store.resend_delivery(&again.id, 21_000).await.unwrap());
    assert!(!store.resend_delivery("dlv_unknown", 21_000).await.unwrap());
    let resent = store.claim_delivery(21_000, 50_000).await.unwrap().unwrap();
    assert_eq!((resent.id.clone(), resent.attempts), (again.id, 1));

    // Retention forgets settled deliveries with their jobs; a pending one stays.
    store.forget_ended_jobs(i64::MAX).await.unwrap();
    let left = store.list_deliveries(None, 10).await.unwrap();
    let left: Vec<(&str, u32)> = left.iter().map(|d| (d.id.as_str(), d.attempts)).collect();
    assert_eq!(left, [(resent.id.as_str(), 1), (second.id.as_str(), 1)]);
}

conformance!(
    [sqlite => open_sqlite, postgres => open_postgres],
    [
        insert_then_get_is_pending,
        claim_takes_the_oldest_due_job,
        heartbeat_only_for_the_holder,
        complete_is_fenced_and_happens_once,
        fail_is_fenced,
        retry_is_fenced_and_delays_the_job,
        defer_gives_attempts_back_and_requeue_reruns_kept_uploads,
        insert_capped_holds_the_caps,
        rescue_takes_back_stale_claims_only,
        list_media_is_newest_first,
        media_pages_resume_after_their_cursor,
        release_hands_back_a_workers_jobs,
        delete_media_once,
        insert_wakes_workers,
        retry_and_rescue_wake_workers,
        tokens_are_spent_once_and_forgotten_after_expiry,
        operators_count_list_and_forget_jobs,
        idempotency_keys_replay_refuse_and_expire,
        status_changes_are_published,
        webhook_deliveries_are_written_with_the_end_and_leased,
    ]
);

#[tokio::test]
async fn sqlite_unmigrated_database_is_refused_until_migrated() {
    let dir = tempfile::tempdir().unwrap();
    unmigrated_database_is_refused_until_migrated(&format!(
        "sqlite://{}/q.db",
        dir.path().display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_unmigrated_database_is_refused_until_migrated() {
    let schema = PgSchema::create().await;
    unmigrated_database_is_refused_until_migrated(&schema.url()).await;
}

/// Two processes sharing one PostgreSQL database: a job queued by one wakes the other's idle
/// workers through LISTEN/NOTIFY, and a store in another schema is not woken.
#[tokio::test]
async fn postgres_insert_in_one_process_wakes_another() {
    let (schema, api) = open_postgres().await;
    let worker = PgJobStore::connect(&DatabaseConfig::from_url(&schema.url()).unwrap())
        .await
        .unwrap();
    let (_other_schema, elsewhere) = open_postgres().await;
    let mut wake_ups = worker.wake_ups();
    let mut elsewhere_wake_ups = elsewhere.wake_ups();
    wake_ups.borrow_and_update();
    elsewhere_wake_ups.borrow_and_update();

    let id = insert(&api, "a", 3, 1_000).await;
    tokio::time::timeout(WAKE_DEADLINE, wake_ups.changed())
        .await
        .expect("the other process was not woken")
        .unwrap();
    assert_eq!(claim(&worker, "w1", 2_000).await.id, id);
    assert!(
        !elsewhere_wake_ups.has_changed().unwrap(),
        "a store in another schema must not be woken"
    );
}

/// SQLite rolls a transaction back by itself after some errors (SQLITE_FULL, a trigger's
/// `RAISE(ROLLBACK)`) while sqlx still counts it open; such a connection must not go back to
/// the pool, where every later BEGIN on it failed until a restart.
#[tokio::test]
async fn sqlite_transactions_rolled_back_by_sqlite_do_not_poison_the_pool() {
    use sqlx::Connection;

    let (dir, store) = open_sqlite().await;
    let url = format!("sqlite://{}/q.db", dir.path().display());
    let mut outside = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let tries = DatabaseConfig::from_url(&url).unwrap().max_connections * 2;

    // The disk "fills" while a job is claimed: every claim fails.
    let id = insert(&store, "a", 3, 1_000).await;
    sqlx::query(
        "CREATE TRIGGER full BEFORE UPDATE ON jobs BEGIN SELECT RAISE(ROLLBACK, 'full'); END",
    )
    .execute(&mut outside)
    .await
    .unwrap();
    for _ in 0..tries {
        assert!(store.claim("w1", 2_000).await.is_err());
    }
    // Space is freed: claims work again on every pooled connection, with no restart.
    sqlx::query("DROP TRIGGER full")
        .execute(&mut outside)
        .await
        .unwrap();
    assert_eq!(claim(&store, "w1", 2_000).await.id, id);
    for _ in 0..tries {
        assert!(store.claim("w1", 2_000).await.unwrap().is_none());
    }

    // The same for completing a job.
    let job = get(&store, &id).await;
    let media = media_for(&job, 2_500);
    sqlx::query(
        "CREATE TRIGGER full BEFORE INSERT ON media BEGIN SELECT RAISE(ROLLBACK, 'full'); END",
    )
    .execute(&mut outside)
    .await
    .unwrap();
    for _ in 0..tries {
        assert!(store.complete(&id, "w1", &media, 3_000).await.is_err());
    }
    sqlx::query("DROP TRIGGER full")
        .execute(&mut outside)
        .await
        .unwrap();
    for _ in 0..tries {
        assert!(store.next_run_at().await.is_ok());
    }
    assert!(store.complete(&id, "w1", &media, 3_000).await.unwrap());
    assert_eq!(get(&store, &id).await.status, JobStatus::Complete);
}
