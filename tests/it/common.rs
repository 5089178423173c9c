//! Shared helpers: an in-process server on a random port, requests, corpus files.

use std::path::PathBuf;

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use ximagepipeline::admin::Admin;
use ximagepipeline::{Config, ImagePipeline};

/// The shared corpus (`../shared/corpus` from the repository root).
pub fn corpus(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")).join(path)
}

/// Bytes of a corpus file.
pub fn corpus_bytes(path: &str) -> Vec<u8> {
    std::fs::read(corpus(path)).unwrap_or_else(|e| panic!("corpus file {path}: {e}"))
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
        let router = pipeline.router();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
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
        self.get(&format!(
            "/image-pipeline/status/{}",
            body["jobId"].as_str().unwrap()
        ))
        .await
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
