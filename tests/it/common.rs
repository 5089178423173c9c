//! Shared helpers: an in-process server on a random port, requests, corpus files and the one
//! reader of the corpus manifest, strict so that a missing file, column or row fails the test
//! instead of leaving it nothing to check.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use ximagepipeline::admin::Admin;
use ximagepipeline::queue::{NewJob, now_ms};
use ximagepipeline::{Config, ImagePipeline, JobId};

/// The shared corpus (`../shared/corpus` from the repository root).
pub fn corpus(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")).join(path)
}

/// Bytes of a corpus file.
pub fn corpus_bytes(path: &str) -> Vec<u8> {
    std::fs::read(corpus(path)).unwrap_or_else(|e| panic!("corpus file {path}: {e}"))
}

/// One row of the corpus manifest (`MANIFEST.tsv`), read by column name.
pub struct ManifestRow {
    columns: Arc<[String]>,
    fields: Vec<String>,
}

impl ManifestRow {
    /// The value in `column`; a column the manifest does not have fails the test.
    pub fn get(&self, column: &str) -> &str {
        let at = self
            .columns
            .iter()
            .position(|c| c == column)
            .unwrap_or_else(|| {
                panic!(
                    "{} has no column {column:?}; it has {:?}",
                    corpus(MANIFEST).display(),
                    self.columns
                )
            });
        &self.fields[at]
    }

    /// The file, relative to the corpus folder.
    pub fn path(&self) -> &str {
        self.get("path")
    }

    /// The format detected from the content, e.g. `JPEG` or `HEIF (undecodable)`.
    pub fn format(&self) -> &str {
        self.get("format")
    }

    /// `accept`, `any` or `reject:REASON`.
    pub fn expected(&self) -> &str {
        self.get("expected")
    }

    /// A number column: `None` for the manifest's `-` (not known), a failure for anything else
    /// that is not a number.
    pub fn number(&self, column: &str) -> Option<u32> {
        match self.get(column) {
            "-" => None,
            value => Some(
                value
                    .parse()
                    .unwrap_or_else(|e| panic!("{}: {column} is {value:?} ({e})", self.path())),
            ),
        }
    }

    /// The size after orientation, when the manifest knows it.
    pub fn display_size(&self) -> Option<(u32, u32)> {
        self.number("display_width")
            .zip(self.number("display_height"))
    }

    /// The file's bytes; a missing file fails the test with its path.
    pub fn bytes(&self) -> Vec<u8> {
        corpus_bytes(self.path())
    }

    /// Whether decoding this file needs libheif, which this build lacks (AVIF and HEIF need
    /// the `heif` feature).
    pub fn needs_missing_libheif(&self) -> bool {
        cfg!(not(feature = "heif"))
            && ["AVIF", "HEIF"]
                .iter()
                .any(|f| self.format().starts_with(f))
    }
}

const MANIFEST: &str = "MANIFEST.tsv";

/// Every row of the corpus manifest. A missing manifest, a row whose field count differs from
/// the header's, or a manifest without rows fails the test, naming the file.
pub fn manifest() -> Vec<ManifestRow> {
    let file = corpus(MANIFEST);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let mut lines = text.lines();
    let columns: Arc<[String]> = lines
        .next()
        .unwrap_or_else(|| panic!("{} is empty", file.display()))
        .split('\t')
        .map(str::to_owned)
        .collect();
    let rows: Vec<ManifestRow> = lines
        .enumerate()
        .map(|(n, line)| {
            let fields: Vec<String> = line.split('\t').map(str::to_owned).collect();
            assert_eq!(
                fields.len(),
                columns.len(),
                "{} line {}: {} fields under {} columns",
                file.display(),
                n + 2,
                fields.len(),
                columns.len()
            );
            ManifestRow {
                columns: Arc::clone(&columns),
                fields,
            }
        })
        .collect();
    assert!(!rows.is_empty(), "{} has no rows", file.display());
    rows
}

/// The manifest row of one corpus file; a file the manifest does not list fails the test.
pub fn manifest_row(path: &str) -> ManifestRow {
    manifest()
        .into_iter()
        .find(|row| row.path() == path)
        .unwrap_or_else(|| panic!("{path} is not in {}", corpus(MANIFEST).display()))
}

/// Corpus files a test leaves out in this build. [`Skipped::report`] says how many and why on
/// stderr, past the test harness's capture, so a pass without them is never silent.
pub struct Skipped {
    test: &'static str,
    paths: Vec<String>,
}

impl Skipped {
    /// Nothing skipped yet, for the test named `test`.
    pub fn new(test: &'static str) -> Skipped {
        Skipped {
            test,
            paths: Vec::new(),
        }
    }

    /// Whether `row` needs libheif, which this build lacks; if so, it is counted as skipped.
    pub fn without_libheif(&mut self, row: &ManifestRow) -> bool {
        let skip = row.needs_missing_libheif();
        if skip {
            self.paths.push(row.path().to_owned());
        }
        skip
    }

    /// Writes the count and the files to stderr; nothing when nothing was skipped.
    #[expect(
        clippy::explicit_write,
        reason = "eprintln! is captured by the test harness and shown only on failure"
    )]
    pub fn report(&self) {
        if self.paths.is_empty() {
            return;
        }
        writeln!(
            std::io::stderr(),
            "{}: skipped {} AVIF/HEIF files, because this build has no libheif (cargo feature \
             `heif`; `scripts/test` builds with it): {}",
            self.test,
            self.paths.len(),
            self.paths.join(", ")
        )
        .unwrap();
    }
}

/// A server in this process with its own data folder and no background workers: tests run
/// queued jobs with [`TestServer::drain`], so nothing depends on timing.
pub struct TestServer {
    pub url: String,
    pub pipeline: ImagePipeline,
    /// The raw stores and maintenance steps of `pipeline`.
    pub admin: Admin,
    pub dir: TempDir,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with("").await
    }

    /// Starts with `extra` TOML merged over the defaults.
    pub async fn start_with(extra: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, extra).unwrap();
        let mut flags = toml::Table::new();
        flags.insert(
            "data_dir".into(),
            dir.path().join("data").display().to_string().into(),
        );
        flags.insert("listen".into(), "127.0.0.1:0".into());
        let mut config = Config::load(Some(&file), std::iter::empty(), flags).unwrap();
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        config.listen = listener.local_addr().unwrap();
        let pipeline = ImagePipeline::open(config).await.unwrap();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let server = pipeline.clone();
        tokio::spawn(async move {
            server
                .serve(listener, async move { stop.cancelled().await })
                .await
                .unwrap();
        });
        TestServer {
            url: format!("http://{}", pipeline.config().listen),
            admin: pipeline.admin(),
            pipeline,
            dir,
            client: reqwest::Client::new(),
            shutdown,
        }
    }

    /// Uploads `bytes` as the `file` part, with the two text fields.
    pub async fn upload(
        &self,
        bytes: Vec<u8>,
        source_type: &str,
        source_id: &str,
    ) -> (StatusCode, Value) {
        let form = Form::new()
            .text("sourceType", source_type.to_owned())
            .text("sourceId", source_id.to_owned())
            .part("file", Part::bytes(bytes).file_name("upload.bin"));
        self.post_form(form).await
    }

    pub async fn post_form(&self, form: Form) -> (StatusCode, Value) {
        let res = self
            .client
            .post(format!("{}/image-pipeline/upload", self.url))
            .multipart(form)
            .send()
            .await
            .unwrap();
        json(res).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        json(
            self.client
                .get(format!("{}{path}", self.url))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// The whole answer to `GET path` on this server, for its status, headers and body.
    pub async fn response(&self, path: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.url);
        self.client.get(url).send().await.unwrap()
    }

    /// The body of an absolute URL (a media or original URL), failing the test on error.
    pub async fn fetch(&self, url: &str) -> Vec<u8> {
        let res = self.client.get(url).send().await.unwrap();
        res.bytes().await.unwrap().to_vec()
    }

    /// Sends DELETE to a path of this server and returns the status.
    pub async fn delete(&self, path: &str) -> StatusCode {
        let res = self
            .client
            .delete(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        res.status()
    }

    /// Runs every queued job to its end, in this task.
    pub async fn drain(&self) -> usize {
        self.admin.run_pending_jobs("test-worker").await
    }

    /// Uploads, runs the job, and returns the final status answer.
    pub async fn process(&self, bytes: Vec<u8>, source_type: &str) -> (StatusCode, Value) {
        let (code, body) = self.upload(bytes, source_type, "it-1").await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        self.drain().await;
        self.status_of(&body).await
    }

    /// The status answer of the job an upload answer (`{"jobId": ...}`) names.
    pub async fn status_of(&self, upload: &Value) -> (StatusCode, Value) {
        let job = upload["jobId"]
            .as_str()
            .unwrap_or_else(|| panic!("no jobId in {upload}"));
        self.get(&format!("/image-pipeline/status/{job}")).await
    }

    /// Queues `bytes` as a job of `source_type` the way the intake would, but without its
    /// checks: stages the object and inserts the job. For failures only a worker can meet.
    pub async fn queue_unchecked(&self, bytes: Vec<u8>, source_type: &str) -> JobId {
        let id = JobId::generate();
        let staging_key = format!("staging/{id}");
        let size = bytes.len() as i64;
        self.admin
            .storage()
            .put(&staging_key, bytes.into())
            .await
            .unwrap();
        let job = NewJob {
            id: id.clone(),
            source_type: source_type.into(),
            source_id: "it-1".into(),
            staging_key,
            original_filename: None,
            mime_type: "application/octet-stream".into(),
            file_size: size,
            max_attempts: 3,
            client: None,
            token_id: None,
            request_id: None,
            trace_parent: None,
            // As the intake would: to the configured receiver, if any.
            webhook_url: self
                .pipeline
                .config()
                .webhooks
                .as_ref()
                .and_then(|w| w.url.as_ref())
                .map(|_| String::new()),
        };
        self.admin.jobs().insert(job, now_ms()).await.unwrap();
        id
    }

    /// Asserts a FAILED status body has exactly the contract's fields, `code`, and an error
    /// sentence that holds nothing internal: no data folder, no path, no host, no debug text.
    #[track_caller]
    pub fn assert_failed_safely(&self, body: &Value, code: &str) {
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {body}"))
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["attempts", "code", "error", "jobId", "status"],
            "{body}"
        );
        assert_eq!(
            (&body["status"], &body["code"]),
            (&Value::from("FAILED"), &Value::from(code)),
            "{body}"
        );
        let error = body["error"].as_str().unwrap();
        assert!(!error.is_empty(), "{body}");
        let data = self.dir.path().display().to_string();
        for leak in [
            data.as_str(),
            "/",
            "\\",
            "Error {",
            "{",
            "}",
            "::",
            "127.0.0.1",
            "localhost",
            "SELECT",
            "panicked",
        ] {
            assert!(
                !error.contains(leak),
                "{leak:?} in the error sentence: {body}"
            );
        }
    }

    /// Every object key in storage (a local folder or a bucket), sorted.
    pub async fn stored_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .admin
            .storage()
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        keys.sort();
        keys
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn json(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// A small valid PNG made on the fly (w×h, RGBA gradient).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([
            (x * 255 / width.max(1)) as u8,
            (y * 255 / height.max(1)) as u8,
            128,
            255,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Decodes a WebP and returns its size, failing the test if it is not WebP.
pub fn webp_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WEBP");
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::WebP).unwrap();
    (img.width(), img.height())
}
