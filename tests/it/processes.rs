//! Real processes of the built binary: crashes, restarts and graceful shutdown.
//!
//! Each test has its own data folder and a configuration with a short heartbeat (1 s) and stale
//! timeout (3 s), so a killed worker's claim is taken back quickly. Processes are driven only
//! from outside (HTTP, signals); tests wait by polling job status against a deadline, never by
//! sleeping. Every child is killed when its guard drops, so a failing test leaves nothing behind,
//! and the children's logs are printed when a test fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use ximagepipeline::{Config, ImagePipeline, JobId, JobStatus};

use crate::backends::{PgSchema, S3Bucket};
use crate::common::corpus;

/// How long a job may take from upload to its end (debug builds on a busy machine are slow).
const JOB_DEADLINE: Duration = Duration::from_secs(120);
/// How long a process may take to start or to stop.
const PROCESS_DEADLINE: Duration = Duration::from_secs(60);
/// Graceful shutdown waits for the job in hand; it must end well within this.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(120);
/// Status poll interval (short: PROCESSING must be seen before the job ends).
const POLL: Duration = Duration::from_millis(20);

const CONFIG: &str = "\
[worker]
heartbeat_interval_secs = 1
stale_timeout_secs = 3
idle_poll_secs = 1
shutdown_timeout_secs = 100
staging_sweep_secs = 1
";

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// One test's folder: the data dir shared by its processes, the config file, and their logs.
pub(crate) struct Env {
    dir: TempDir,
    /// `XIP_*` variables every process gets.
    vars: Vec<(String, String)>,
}

impl Env {
    /// The embedded default: SQLite and local objects under the data folder.
    pub(crate) fn new() -> Env {
        Env::with_backends("")
    }

    /// `backends` (top-level configuration lines: database, storage) before the common tables.
    pub(crate) fn with_backends(backends: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            format!("{backends}{CONFIG}"),
        )
        .unwrap();
        Env {
            dir,
            vars: Vec::new(),
        }
    }

    /// Sets an `XIP_*` variable for every process started afterwards.
    pub(crate) fn with_var(mut self, name: &str, value: &str) -> Env {
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The library opened on the processes' configuration, to look at what they left.
    pub(crate) async fn pipeline(&self) -> ImagePipeline {
        let mut flags = toml::Table::new();
        flags.insert(
            "data_dir".into(),
            self.data_dir().display().to_string().into(),
        );
        let config = Config::load(
            Some(&self.dir.path().join("config.toml")),
            std::iter::empty(),
            flags,
        )
        .unwrap();
        ImagePipeline::open(config).await.unwrap()
    }

    /// Every stored object (local folder or bucket), as keys.
    pub(crate) async fn stored_keys(&self) -> BTreeSet<String> {
        let listed = self
            .pipeline()
            .await
            .admin()
            .storage()
            .list("")
            .await
            .unwrap();
        listed.into_iter().map(|o| o.key).collect()
    }

    /// What the process `name` has logged so far.
    pub(crate) fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the binary with `args` plus `--data-dir` and `--config`; stderr goes to a log file.
    fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        let log = self.dir.path().join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ximagepipeline"))
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .env("NO_COLOR", "1")
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Proc {
            name: name.to_owned(),
            child,
            stdout,
        }
    }

    /// `serve --listen 127.0.0.1:0`, returning once it has said where it listens.
    pub(crate) async fn serve(&self, name: &str, no_worker: bool) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        if no_worker {
            args.push("--no-worker");
        }
        let mut proc = self.spawn(name, &args);
        let line = tokio::time::timeout(PROCESS_DEADLINE, proc.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("{name} did not announce its address in time"))
            .unwrap();
        let Some(line) = line else {
            panic!(
                "{name} exited before listening: {:?}",
                proc.child.try_wait()
            );
        };
        let addr = line
            .strip_prefix("ximagepipeline listening on ")
            .unwrap_or_else(|| panic!("{name} printed {line:?}"));
        Server {
            proc,
            base: addr.trim().to_owned(),
            client: reqwest::Client::new(),
        }
    }

    /// A `worker` process.
    pub(crate) fn worker(&self, name: &str) -> Proc {
        self.spawn(name, &["worker"])
    }
}

impl Drop for Env {
    /// On failure, shows what the processes logged (the test harness prints captured output).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        for path in entries.map(|e| e.unwrap().path()) {
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| format!("(cannot read the log: {e})"));
                eprintln!("===== {} =====\n{text}", path.display());
            }
        }
    }
}

/// A child process, killed (SIGKILL) if still running when dropped.
pub(crate) struct Proc {
    name: String,
    child: Child,
    /// Kept open so the child never writes to a closed pipe.
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Proc {
    pub(crate) fn pid(&self) -> i32 {
        self.child
            .id()
            .expect("the process has already been reaped") as i32
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) async fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        // SAFETY: kill(2) with a pid of our own child that has not been reaped yet.
        let sent = unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        assert_eq!(sent, 0, "cannot signal {}", self.name);
        self.wait(deadline).await
    }

    /// SIGKILL, as a crash would, and reap.
    pub(crate) async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    pub(crate) async fn wait(&mut self, deadline: Duration) -> ExitStatus {
        tokio::time::timeout(deadline, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {deadline:?}", self.name))
            .unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // `kill_on_drop` also does this; being explicit keeps the guard visible.
        let _ = self.child.start_kill();
    }
}

/// A `serve` process and how to reach it.
pub(crate) struct Server {
    pub(crate) proc: Proc,
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
}

impl Server {
    /// Uploads a file and returns the job id from the 202 answer.
    pub(crate) async fn upload(&self, path: &Path, source_type: &str, source_id: &str) -> String {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        self.upload_bytes(&name, bytes, source_type, source_id)
            .await
    }

    /// Uploads `bytes` named `name` and returns the job id from the 202 answer.
    pub(crate) async fn upload_bytes(
        &self,
        name: &str,
        bytes: Vec<u8>,
        source_type: &str,
        source_id: &str,
    ) -> String {
        let (status, _, body) = self.try_upload(name, bytes, source_type, source_id).await;
        assert_eq!(status, StatusCode::ACCEPTED, "upload of {name}: {body}");
        body["jobId"].as_str().unwrap().to_owned()
    }

    /// Uploads `bytes` named `name`: the answer's status, headers and JSON body.
    pub(crate) async fn try_upload(
        &self,
        name: &str,
        bytes: Vec<u8>,
        source_type: &str,
        source_id: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let form = Form::new()
            .text("sourceType", source_type.to_owned())
            .text("sourceId", source_id.to_owned())
            .part("file", Part::bytes(bytes).file_name(name.to_owned()));
        let res = self
            .client
            .post(format!("{}/image-pipeline/upload", self.base))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("upload of {name}: {status} {text:?}: {e}"));
        (status, headers, body)
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap())
    }

    pub(crate) async fn status(&self, job: &str) -> Value {
        let (code, body) = self.get(&format!("/image-pipeline/status/{job}")).await;
        assert!(code != StatusCode::NOT_FOUND, "job {job} unknown: {body}");
        body
    }

    /// Polls the job until `done(status)` holds, panicking at the deadline.
    pub(crate) async fn wait_for(
        &self,
        job: &str,
        what: &str,
        done: impl Fn(&str) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let body = self.status(job).await;
            let status = body["status"]
                .as_str()
                .unwrap_or_else(|| panic!("job {job}: a status answer without a status: {body}"));
            if done(status) {
                return body;
            }
            assert!(
                start.elapsed() < JOB_DEADLINE,
                "job {job} not {what} after {JOB_DEADLINE:?}: {body}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the job is COMPLETE, REJECTED or FAILED.
    pub(crate) async fn wait_end(&self, job: &str) -> Value {
        self.wait_for(job, "ended", |s| {
            ["COMPLETE", "REJECTED", "FAILED"].contains(&s)
        })
        .await
    }

    /// Waits until a worker has claimed the job; fails if the job ends before it is seen.
    async fn wait_processing(&self, job: &str) {
        let body = self.wait_for(job, "PROCESSING", |s| s != "PENDING").await;
        assert_eq!(
            body["status"], "PROCESSING",
            "the job ended before it could be seen PROCESSING (the photo is too small?): {body}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Corpus
// ---------------------------------------------------------------------------------------------

/// The largest JPEG among the corpus photos: the job that takes longest, to be caught mid-run.
fn big_photo() -> PathBuf {
    std::fs::read_dir(corpus("photos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "jpeg"))
        .max_by_key(|p| p.metadata().unwrap().len())
        .expect("no JPEG in the corpus photos")
}

/// The object key of a public URL (`{base}/files/{key}`).
fn key_of(url: &Value) -> String {
    let url = url.as_str().unwrap_or_else(|| panic!("not a URL: {url}"));
    let (_, key) = url
        .split_once("/files/")
        .unwrap_or_else(|| panic!("not a local file URL: {url}"));
    key.to_owned()
}

/// Every key a media object names: its variants and its original.
fn media_keys(media: &Value) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = media["urls"]
        .as_object()
        .unwrap_or_else(|| panic!("media without urls: {media}"))
        .values()
        .map(key_of)
        .collect();
    keys.insert(key_of(&media["originalUrl"]));
    keys
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// A worker killed mid-job loses its claim after the stale timeout; a new worker finishes the
/// job, once: one media row, one set of objects, nothing left in staging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_job_is_finished_once_by_another() {
    let env = Env::new();
    let api = env.serve("api", true).await;
    let mut doomed = env.worker("worker-1");
    let job = api.upload(&big_photo(), "hero", "killed-1").await;
    api.wait_processing(&job).await;

    doomed.kill().await;
    let _rescuer = env.worker("worker-2");

    let done = api.wait_end(&job).await;
    assert_eq!(done["status"], "COMPLETE", "{done}");
    let (code, list) = api
        .get("/image-pipeline/media?sourceType=hero&sourceId=killed-1")
        .await;
    assert_eq!(code, StatusCode::OK, "{list}");
    let list = list["media"].as_array().unwrap_or_else(|| panic!("{list}"));
    assert_eq!(list.len(), 1, "exactly one media for the job: {list:?}");
    let media = &list[0];
    assert_eq!(media["id"], done["media"]["id"]);
    assert_eq!(
        media["urls"].as_object().unwrap().len(),
        3,
        "lg, xl, 2xl: {media}"
    );

    let stored = env.stored_keys().await;
    assert!(
        !stored.iter().any(|k| k.starts_with("staging/")),
        "staging must be empty: {stored:?}"
    );
    assert_eq!(
        stored,
        media_keys(media),
        "exactly the media's objects, no orphans"
    );
}

/// Jobs queued by a server without workers survive a SIGTERM and are done by the next server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_survive_a_restart() {
    let env = Env::new();
    let mut api = env.serve("api", true).await;
    let mut jobs = Vec::new();
    for (n, file) in [
        "photos/kodim03.png",
        "photos/kodim04.png",
        "valid/jpeg_progressive_cat.jpg",
    ]
    .into_iter()
    .enumerate()
    {
        jobs.push(
            api.upload(&corpus(file), "gallery", &format!("restart-{n}"))
                .await,
        );
    }
    for job in &jobs {
        let body = api.status(job).await;
        assert_eq!(body["status"], "PENDING", "no worker runs yet: {body}");
    }
    let exit = api.proc.terminate(PROCESS_DEADLINE).await;
    assert!(exit.success(), "SIGTERM must end serve with 0, got {exit}");

    let mut server = env.serve("serve", false).await;
    for job in &jobs {
        let body = server.wait_end(job).await;
        assert_eq!(body["status"], "COMPLETE", "{body}");
    }
    let exit = server.proc.terminate(SHUTDOWN_DEADLINE).await;
    assert!(exit.success(), "SIGTERM must end serve with 0, got {exit}");
}

/// SIGTERM while a job runs: the job in hand is finished, then the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_job_in_hand() {
    let env = Env::new();
    let mut server = env.serve("serve", false).await;
    let job = server.upload(&big_photo(), "hero", "graceful-1").await;
    server.wait_processing(&job).await;

    let exit = server.proc.terminate(SHUTDOWN_DEADLINE).await;
    assert!(exit.success(), "SIGTERM must end serve with 0, got {exit}");

    let report = env
        .pipeline()
        .await
        .get_status(&JobId::from_string(job.clone()))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("job {job} is gone"));
    assert_eq!(
        report.job.status,
        JobStatus::Complete,
        "the job in hand must be finished, not abandoned: {:?}",
        report.job
    );
    let media = report.media.expect("a COMPLETE job has its media");
    let stored = env.stored_keys().await;
    for key in media.keys() {
        assert!(stored.contains(key), "{key} missing from {stored:?}");
    }
    assert!(
        !stored.iter().any(|k| k.starts_with("staging/")),
        "staging must be empty: {stored:?}"
    );
}

/// A `width`×`height` 16-bit RGBA PNG of one colour: a small file, slow to decode.
fn flat_png16(width: u32, height: u32) -> Vec<u8> {
    let img = image::ImageBuffer::<image::Rgba<u16>, _>::from_pixel(
        width,
        height,
        image::Rgba([40_000, 20_000, 10_000, u16::MAX]),
    );
    let mut out = std::io::Cursor::new(Vec::new());
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Sub,
    );
    img.write_with_encoder(encoder).unwrap();
    out.into_inner()
}

/// CPU seconds (user + system) process `pid` has used so far, from /proc.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / per_second
}

/// A job past its time limit stops using the CPU: its work is told to stop, the job is FAILED
/// once the work has stopped, and the process is idle afterwards (it was not: the work went on
/// for seconds on a thread nobody waited for, beside the next job).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_time_limit_leaves_the_cpu_idle() {
    let env = Env::new().with_var("XIP_WORKER_JOB_TIMEOUT_SECS", "0.05");
    let server = env.serve("serve", false).await;
    // Seconds of pixel work from a small file: a 49-megapixel 16-bit RGBA PNG of one colour
    // (392 MB decoded, within the 512 MiB work budget).
    let big = flat_png16(7000, 7000);
    let job = server.upload_bytes("big.png", big, "hero", "slow-1").await;
    let body = server.wait_end(&job).await;
    assert_eq!(body["status"], "FAILED", "{body}");
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    let pid = server.proc.pid();
    let before = cpu_seconds(pid);
    // The measuring window: time is what is measured here, not waited on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_seconds(pid) - before;
    println!("{used:.2} CPU seconds after the job failed");
    assert!(
        used < 0.3,
        "{used:.2} CPU seconds in the 2 s after the job failed"
    );
}

// ---------------------------------------------------------------------------------------------
// Scale-out: 2 API and 3 worker processes on PostgreSQL and S3
// ---------------------------------------------------------------------------------------------

/// Uploads in one scale-out run.
const UPLOADS: usize = 300;

/// Small real images of the four default types, uploaded in turn.
const SMALL_IMAGES: &[&str] = &[
    "valid/jpeg_progressive_cat.jpg",
    "valid/jpeg_gray_concert.jpg",
    "valid/jpeg_iptc_xmp_unsplash.jpg",
    "valid/png_rgba_blackbug.png",
    "valid/webp_lossless.webp",
    "valid/gif_animated_rotating_squares.gif",
];

/// One scale-out run: 300 uploads at once over two `serve --no-worker` processes, three
/// `worker` processes sharing PostgreSQL and the bucket; with `kill`, one worker is SIGKILLed
/// halfway while it holds a claim. Every job must end COMPLETE exactly once and the bucket
/// must hold exactly the media's objects.
async fn scale_out(kill: bool) {
    let schema = PgSchema::create().await;
    let bucket = S3Bucket::create();
    // As the scale-out guide says: migrations run once, by `migrate`; processes only check.
    let env = Env::with_backends(&format!(
        "database_url = \"{}\"\npublic_base_url = \"https://cdn.example.test/files\"\n{}\
         database.migrate_on_start = false\ndatabase.max_connections = 5\n",
        schema.url(),
        bucket.config()
    ));
    let mut migrate = env.spawn("migrate", &["migrate"]);
    assert!(
        migrate.wait(PROCESS_DEADLINE).await.success(),
        "migrate failed"
    );

    let apis = [
        env.serve("api-1", true).await,
        env.serve("api-2", true).await,
    ];
    let mut workers: Vec<Proc> = (1..=3)
        .map(|n| env.worker(&format!("worker-{n}")))
        .collect();
    let db = sqlx::PgPool::connect(&schema.url()).await.unwrap();
    let images: Vec<(String, Vec<u8>)> = SMALL_IMAGES
        .iter()
        .map(|p| {
            (
                p.rsplit('/').next().unwrap().to_owned(),
                std::fs::read(corpus(p)).unwrap(),
            )
        })
        .collect();

    let started = Instant::now();
    let jobs: Vec<String> = futures::future::join_all((0..UPLOADS).map(|i| {
        let (name, bytes) = &images[i % images.len()];
        let api = &apis[i % 2];
        async move {
            api.upload_bytes(name, bytes.clone(), "avatar", &format!("user-{i}"))
                .await
        }
    }))
    .await;
    let uploaded = started.elapsed();

    let mut abandoned: Vec<String> = Vec::new();
    if kill {
        let doomed = format!("{}-%", workers[0].pid());
        let held = |db| {
            let doomed = doomed.clone();
            Box::pin(async move {
                sqlx::query_scalar::<_, String>(
                    "SELECT id FROM jobs WHERE status = 'PROCESSING' AND locked_by LIKE $1",
                )
                .bind(doomed)
                .fetch_all(db)
                .await
                .unwrap()
            }) as futures::future::BoxFuture<'_, Vec<String>>
        };
        wait_until(
            &db,
            "half the jobs COMPLETE and worker-1 holding a claim",
            |db| {
                Box::pin(async move {
                    let complete =
                        count(db, "SELECT count(*) FROM jobs WHERE status = 'COMPLETE'").await;
                    let holds = !held(db).await.is_empty();
                    (complete >= (UPLOADS / 2) as i64 && holds).then_some(())
                })
            },
        )
        .await;
        let application = format!("ximagepipeline-{}", workers[0].pid());
        workers[0].kill().await;
        // Read once the server has ended the dead worker's sessions: a claim it sent just
        // before dying is committed or gone by then. Its claims are not stale for another 3 s.
        wait_until(&db, "the killed worker's sessions ended", |db| {
            let application = application.clone();
            Box::pin(async move {
                let sessions: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                )
                .bind(application)
                .fetch_one(db)
                .await
                .unwrap();
                (sessions == 0).then_some(())
            })
        })
        .await;
        abandoned = held(&db).await;
        assert!(
            !abandoned.is_empty(),
            "worker-1 died between two jobs; nothing to take back"
        );
    }
    wait_until(&db, "every job ended", |db| {
        Box::pin(async move {
            let open = count(
                db,
                "SELECT count(*) FROM jobs WHERE status IN ('PENDING', 'PROCESSING')",
            )
            .await;
            (open == 0).then_some(())
        })
    })
    .await;
    let elapsed = started.elapsed();
    eprintln!(
        "scale-out (kill: {kill}): {UPLOADS} uploads accepted in {:.2} s, all COMPLETE in {:.2} s \
         = {:.1} uploads/s",
        uploaded.as_secs_f64(),
        elapsed.as_secs_f64(),
        UPLOADS as f64 / elapsed.as_secs_f64()
    );

    // Every job COMPLETE once, seen through both APIs; one media each, with distinct ids.
    let mut expected = BTreeSet::new();
    let mut media_ids = BTreeSet::new();
    for (i, job) in jobs.iter().enumerate() {
        let body = apis[(i + 1) % 2].status(job).await;
        assert_eq!(body["status"], "COMPLETE", "job {job}: {body}");
        assert!(media_ids.insert(body["media"]["id"].to_string()), "{body}");
        expected.extend(media_keys(&body["media"]));
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM media").await,
        UPLOADS as i64
    );
    let attempts: Vec<(String, i64)> = sqlx::query_as("SELECT id, attempts FROM jobs")
        .fetch_all(&db)
        .await
        .unwrap();
    for (job, n) in &attempts {
        let rescued = abandoned.contains(job);
        assert_eq!(
            *n,
            if rescued { 2 } else { 1 },
            "job {job} (held by the killed worker: {rescued}) took {n} attempts"
        );
    }

    // A worker killed between recording COMPLETE and deleting the upload leaves it in staging;
    // the staging sweep (every second here) removes it.
    let start = Instant::now();
    let stored = loop {
        let stored = env.stored_keys().await;
        if !stored.iter().any(|k| k.starts_with("staging/")) {
            break stored;
        }
        assert!(
            start.elapsed() < SCALE_OUT_DEADLINE,
            "staging never emptied: {:?}",
            stored
                .iter()
                .filter(|k| k.starts_with("staging/"))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(stored.len(), expected.len(), "no orphans, nothing missing");
    assert_eq!(stored, expected);

    for worker in workers.iter_mut().skip(usize::from(kill)) {
        let exit = worker.terminate(SHUTDOWN_DEADLINE).await;
        assert!(
            exit.success(),
            "{} ended with {exit} on SIGTERM",
            worker.name
        );
    }
}

async fn count(db: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

/// Polls `check` against the database until it yields a value, panicking at the deadline.
async fn wait_until<'a, T>(
    db: &'a sqlx::PgPool,
    what: &str,
    check: impl Fn(&'a sqlx::PgPool) -> futures::future::BoxFuture<'a, Option<T>>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check(db).await {
            return value;
        }
        assert!(
            start.elapsed() < SCALE_OUT_DEADLINE,
            "not {what} after {SCALE_OUT_DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// How long a whole scale-out run may take (debug builds, 2 cores).
const SCALE_OUT_DEADLINE: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_300_uploads_two_apis_three_workers_complete_once() {
    scale_out(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_survives_a_worker_killed_halfway() {
    scale_out(true).await;
}
