//! Faults injected into real processes and servers: what a 202 promises (API.md §4).
//!
//! Object storage stopped with jobs in flight, the disk of the embedded default filling up, a
//! crash mid-upload, PostgreSQL restarted under load, SIGTERM with a slow client. Each fault is
//! short here (seconds); `scripts/soak` and the README's Reliability section have the long runs.
//! Tests wait for what they can observe (job states, files, log lines) against deadlines.
//! `XIMAGEPIPELINE_TEST_OUTAGE_SECS` holds each S3 and PostgreSQL outage at least that long:
//! the same tests as long runs (`XIMAGEPIPELINE_TEST_OUTAGE_SECS=600 scripts/test faults`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use sqlx::Connection;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::backends::{PrivatePostgres, PrivateS3};
use crate::common::corpus;
use crate::processes::{Env, Server};

/// How long a condition may take to come true.
const DEADLINE: Duration = Duration::from_secs(120);
/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(100);

/// How long an outage lasts at least: `XIMAGEPIPELINE_TEST_OUTAGE_SECS`, else only as long as
/// the test needs to observe it.
fn outage_hold() -> Duration {
    std::env::var("XIMAGEPIPELINE_TEST_OUTAGE_SECS")
        .ok()
        .and_then(|secs| secs.parse().ok())
        .map_or(Duration::ZERO, Duration::from_secs_f64)
}

/// `n` small JPEGs of the corpus (`valid/`), cycled.
fn small_jpegs(n: usize) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus("valid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .filter(|p| p.metadata().unwrap().len() < 200_000)
        // Lossless JPEG is refused at upload (422): not a job to run.
        .filter(|p| !p.to_string_lossy().contains("lossless"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no small JPEG in the corpus");
    (0..n)
        .map(|i| {
            let path = &files[i % files.len()];
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(path).unwrap())
        })
        .collect()
}

/// Waits until `check` returns `Some`, panicking with `what` at the deadline.
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Asserts a refusal that may pass: 503 with `code` (one of them) and a `Retry-After`.
fn assert_unavailable(
    (status, headers, body): &(StatusCode, reqwest::header::HeaderMap, serde_json::Value),
    codes: &[&str],
) {
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let code = body["code"].as_str().unwrap_or_default();
    assert!(
        codes.contains(&code),
        "code {code}, expected one of {codes:?}: {body}"
    );
    assert!(
        headers.contains_key(RETRY_AFTER),
        "no Retry-After: {headers:?}"
    );
}

/// Uploads every file and returns the job ids (each must get its 202).
async fn upload_all(server: &Server, files: &[(String, Vec<u8>)], tag: &str) -> Vec<String> {
    let mut jobs = Vec::new();
    for (n, (name, bytes)) in files.iter().enumerate() {
        let source = format!("{tag}-{n}");
        jobs.push(
            server
                .upload_bytes(name, bytes.clone(), "avatar", &source)
                .await,
        );
    }
    jobs
}

/// Waits until every job has ended and asserts each is COMPLETE.
async fn assert_all_complete(server: &Server, jobs: &[String]) {
    for job in jobs {
        let end = server.wait_end(job).await;
        assert_eq!(end["status"], "COMPLETE", "job {job}: {end}");
    }
}

/// Object storage goes away for longer than a job's attempts would last (old behaviour: three
/// attempts 2 s and 4 s apart, then FAILED and the upload deleted). Every job waits it out,
/// using no attempt; uploads meanwhile get 503 with `Retry-After`; when the server is back,
/// every 202 ends COMPLETE with its original stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_loses_no_accepted_upload() {
    let mut s3 = PrivateS3::start();
    let env = Env::with_backends(&s3.config())
        .with_var("XIP_WORKER_RETRY_BASE_DELAY_SECS", "1")
        .with_var("XIP_WORKER_RETRY_MAX_DELAY_SECS", "1");
    let api = env.serve("api", true).await;
    let files = small_jpegs(6);
    let jobs = upload_all(&api, &files, "s3-outage").await;

    s3.stop();
    let outage = Instant::now();
    let refused = api
        .try_upload(&files[0].0, files[0].1.clone(), "avatar", "during")
        .await;
    assert_unavailable(&refused, &["STORAGE_UNAVAILABLE"]);
    let _worker = env.worker("worker");

    // Each job meets the outage more often than it has attempts (max_attempts = 3).
    until("every job deferred four times", async || {
        let log = env.log("worker");
        jobs.iter()
            .all(|job| {
                log.lines()
                    .filter(|l| l.contains(&format!("job={job}")) && l.contains("Defer"))
                    .count()
                    >= 4
            })
            .then_some(())
    })
    .await;
    for job in &jobs {
        let body = api.status(job).await;
        let status = body["status"].as_str().unwrap();
        assert!(
            ["PENDING", "PROCESSING"].contains(&status),
            "waiting out the outage: {body}"
        );
    }

    // The fault's length, not a synchronisation: the jobs are deferring meanwhile.
    tokio::time::sleep(outage_hold().saturating_sub(outage.elapsed())).await;
    s3.restart();
    assert_all_complete(&api, &jobs).await;
    let originals = walk(&s3.bucket_dir())
        .into_iter()
        .filter(|k| k.starts_with("originals/"))
        .count();
    assert_eq!(originals, jobs.len(), "one original per job");
}

/// The embedded default on a disk that fills up: uploads get clear 503s, accepted jobs wait,
/// and once space is freed everything resumes by itself (no restart) with the database intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_uploads_and_recovers_by_itself() {
    let env = Env::new();
    let Some(_mount) = Tmpfs::mount(&env.data_dir(), "24m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let api = env.serve("api", true).await;
    let files = small_jpegs(4);
    let jobs = upload_all(&api, &files, "full").await;

    let filler = env.data_dir().join("filler");
    fill(&filler);
    let refused = api
        .try_upload(&files[0].0, files[0].1.clone(), "avatar", "full-x")
        .await;
    assert_unavailable(&refused, &["STORAGE_FULL", "QUEUE_UNAVAILABLE"]);

    let _worker = env.worker("worker");
    until("the worker meets the full disk", async || {
        let log = env.log("worker");
        (log.contains("Defer")
            || log.contains("cannot claim jobs")
            || log.contains("cannot record"))
        .then_some(())
    })
    .await;

    std::fs::remove_file(&filler).unwrap();
    assert_all_complete(&api, &jobs).await;
    let after = upload_all(&api, &files[..1], "after").await;
    assert_all_complete(&api, &after).await;

    let url = format!(
        "sqlite://{}",
        env.data_dir().join("ximagepipeline.db").display()
    );
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(check, "ok");
}

/// A crash mid-upload leaves the local store's partial file (`staging/<job>#N`), which listings
/// do not show; the restarted server sweeps it after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_upload_left_by_a_crash_is_swept() {
    let env = Env::new().with_var("XIP_WORKER_STAGING_GRACE_SECS", "2");
    let mut first = env.serve("first", false).await;
    let _client = slow_upload(&first, 1 << 20).await;
    let staging = env.data_dir().join("objects/staging");
    until("the partial upload is on disk", async || {
        partial_files(&staging).into_iter().next()
    })
    .await;

    first.proc.kill().await;
    let second = env.serve("second", false).await;
    until("the partial file is swept", async || {
        partial_files(&staging).is_empty().then_some(())
    })
    .await;
    let (name, bytes) = small_jpegs(1).remove(0);
    let job = second
        .upload_bytes(&name, bytes, "avatar", "after-crash")
        .await;
    assert_all_complete(&second, &[job]).await;
}

/// SIGTERM while a client trickles an upload: the listener closes, the request gets
/// `server.shutdown_grace_secs`, and the process exits 0 within its bounds although the client
/// would go on for a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_slow_uploader_exits_within_the_bound() {
    let env = Env::new()
        .with_var("XIP_SERVER_SHUTDOWN_GRACE_SECS", "2")
        .with_var("XIP_WORKER_SHUTDOWN_TIMEOUT_SECS", "3");
    let mut server = env.serve("api", false).await;
    let client = slow_upload(&server, 256 * 1024).await;
    let staging = env.data_dir().join("objects/staging");
    until("the slow upload is being staged", async || {
        partial_files(&staging).into_iter().next()
    })
    .await;

    let asked = Instant::now();
    let status = server.proc.terminate(Duration::from_secs(60)).await;
    let took = asked.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        took < Duration::from_secs(3 + 5),
        "exited {took:?} after SIGTERM; the bound is 3 s (+ start-up slack)"
    );
    client.abort();
}

/// PostgreSQL stopped and started twice while jobs run: an upload meeting the outage is refused
/// within seconds (not after the pool's 30 s), and every 202 ends COMPLETE, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_twice_under_load_loses_nothing() {
    let pg = PrivatePostgres::start();
    let env = Env::with_backends(&format!("database_url = \"{}\"\n", pg.url()));
    let api = env.serve("api", false).await;
    let files = small_jpegs(8);

    let mut accepted = Vec::new();
    for round in 0..3 {
        if round > 0 {
            // The previous round's jobs are still running.
            pg.stop();
            let (name, bytes) = &files[0];
            let sent = Instant::now();
            let answer = api
                .try_upload(name, bytes.clone(), "avatar", "pg-down")
                .await;
            let took = sent.elapsed();
            assert_unavailable(&answer, &["QUEUE_UNAVAILABLE"]);
            assert!(took < Duration::from_secs(10), "the refusal took {took:?}");
            // The fault's length, not a synchronisation: the workers are retrying meanwhile.
            tokio::time::sleep(outage_hold().saturating_sub(sent.elapsed())).await;
            pg.start_again();
        }
        for (n, (name, bytes)) in files.iter().enumerate() {
            let source = format!("pg-{round}-{n}");
            let answer = api.try_upload(name, bytes.clone(), "avatar", &source).await;
            match answer.0 {
                StatusCode::ACCEPTED => {
                    accepted.push(answer.2["jobId"].as_str().unwrap().to_owned());
                }
                // A connection the restart cut may still be met once.
                _ => assert_unavailable(&answer, &["QUEUE_UNAVAILABLE"]),
            }
        }
    }
    assert!(
        accepted.len() >= files.len() * 2,
        "uploads while the server is up are accepted: {} of {}",
        accepted.len(),
        files.len() * 3
    );
    assert_all_complete(&api, &accepted).await;

    let mut db = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    let (complete, media): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM jobs WHERE status = 'COMPLETE'), \
                (SELECT count(*) FROM media)",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    let n = accepted.len() as i64;
    assert_eq!((complete, media), (n, n), "each job complete once");
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Starts an upload of a corpus photo that sends `first` bytes at once and then one 1 KiB
/// piece a second (a slow client), on a raw connection; abort the task to stop it.
async fn slow_upload(server: &Server, first: usize) -> tokio::task::JoinHandle<()> {
    let photo = std::fs::read(corpus("photos/munich_subway_6.8mp_canon.jpg")).unwrap();
    let addr = server.base.trim_start_matches("http://").to_owned();
    let boundary = "xipslowupload";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"sourceType\"\r\n\r\navatar\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"sourceId\"\r\n\r\nslow\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let length = head.len() + photo.len() + tail.len();
    let request = format!(
        "POST /image-pipeline/upload HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n"
    );
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    tokio::spawn(async move {
        let mut sent = first.min(photo.len());
        let trickle = async {
            stream.write_all(request.as_bytes()).await?;
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&photo[..sent]).await?;
            while sent < photo.len() {
                // The client's own pace: one piece a second.
                tokio::time::sleep(Duration::from_secs(1)).await;
                let end = (sent + 1024).min(photo.len());
                stream.write_all(&photo[sent..end]).await?;
                sent = end;
            }
            stream.write_all(tail.as_bytes()).await
        };
        let _ = trickle.await;
    })
}

/// The local store's temporary files (`name#N`) in a folder.
fn partial_files(folder: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains('#'))
        .filter(|p| p.metadata().is_ok_and(|m| m.len() > 0))
        .collect()
}

/// Every file under `root`, as `/`-separated paths relative to it.
fn walk(root: &std::path::Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                found.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// Writes `path` until the disk is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        match file.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // The last block may have been written in part; the rest of the disk is left as it is.
    let _ = file.flush();
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `at`; `None` without the right to mount.
    fn mount(at: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs { at: at.to_owned() })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.at)
            .status();
    }
}
