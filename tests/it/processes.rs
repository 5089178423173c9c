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
";

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// One test's folder: the data dir shared by its processes, the config file, and their logs.
struct Env {
    dir: TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), CONFIG).unwrap();
        Env { dir }
    }

    fn data_dir(&self) -> PathBuf {
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
    async fn serve(&self, name: &str, no_worker: bool) -> Server {
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
    fn worker(&self, name: &str) -> Proc {
        self.spawn(name, &["worker"])
    }

    /// Every file under the objects folder, as keys relative to it.
    fn object_keys(&self) -> BTreeSet<String> {
        let root = self.data_dir().join("objects");
        let mut keys = BTreeSet::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for path in entries.map(|e| e.unwrap().path()) {
                if path.is_dir() {
                    stack.push(path);
                } else {
                    keys.insert(path.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        keys
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
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                eprintln!("===== {} =====\n{text}", path.display());
            }
        }
    }
}

/// A child process, killed (SIGKILL) if still running when dropped.
struct Proc {
    name: String,
    child: Child,
    /// Kept open so the child never writes to a closed pipe.
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Proc {
    fn pid(&self) -> i32 {
        self.child
            .id()
            .expect("the process has already been reaped") as i32
    }

    /// Sends SIGTERM and waits for the exit status.
    async fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        // SAFETY: kill(2) with a pid of our own child that has not been reaped yet.
        let sent = unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        assert_eq!(sent, 0, "cannot signal {}", self.name);
        self.wait(deadline).await
    }

    /// SIGKILL, as a crash would, and reap.
    async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    async fn wait(&mut self, deadline: Duration) -> ExitStatus {
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
struct Server {
    proc: Proc,
    base: String,
    client: reqwest::Client,
}

impl Server {
    /// Uploads a file and returns the job id from the 202 answer.
    async fn upload(&self, path: &Path, source_type: &str, source_id: &str) -> String {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let form = Form::new()
            .text("sourceType", source_type.to_owned())
            .text("sourceId", source_id.to_owned())
            .part("file", Part::bytes(bytes).file_name(name));
        let res = self
            .client
            .post(format!("{}/image-pipeline/upload", self.base))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let (status, body) = (res.status(), res.text().await.unwrap());
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "upload of {}: {body}",
            path.display()
        );
        let body: Value = serde_json::from_str(&body).unwrap();
        body["jobId"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap())
    }

    async fn status(&self, job: &str) -> Value {
        let (code, body) = self.get(&format!("/image-pipeline/status/{job}")).await;
        assert!(code != StatusCode::NOT_FOUND, "job {job} unknown: {body}");
        body
    }

    /// Polls the job until `done(status)` holds, panicking at the deadline.
    async fn wait_for(&self, job: &str, what: &str, done: impl Fn(&str) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let body = self.status(job).await;
            let status = body["status"].as_str().unwrap_or_default();
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
    async fn wait_end(&self, job: &str) -> Value {
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

fn corpus(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")).join(path)
}

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

    let stored = env.object_keys();
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

    let pipeline = ImagePipeline::open(Config::embedded(env.data_dir()).unwrap())
        .await
        .unwrap();
    let report = pipeline
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
    let stored = env.object_keys();
    for key in media.keys() {
        assert!(stored.contains(key), "{key} missing from {stored:?}");
    }
    assert!(
        !stored.iter().any(|k| k.starts_with("staging/")),
        "staging must be empty: {stored:?}"
    );
}
