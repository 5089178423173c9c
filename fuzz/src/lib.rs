//! What each fuzz target checks, one function a target. The targets (`fuzz_targets/`) feed
//! them libFuzzer's inputs; `tests/it/fuzzed.rs` replays every past finding
//! (`fuzz/regressions/<target>/`) through the same functions in the normal test suite.
//!
//! Each function panics when the product misbehaves: a panic caught by the pipeline's own
//! guard (`PipelineError::Panicked`) counts too, as does an answer that breaks a promise
//! (an image the limits refuse said to be fine, a stripped file with another size, a 500 for
//! a client's body). Errors for bad input are the expected outcome and pass.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use tower::ServiceExt;
use ximagepipeline::pipeline::format::Container;
use ximagepipeline::pipeline::{self, Fit, Limits, OutputSpec, PipelineError, VariantSpec, sniff};
use ximagepipeline::{Config, ImagePipeline};

/// The default limits: what `probe` runs with in the request path.
const DEFAULT_LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_side: 20_000,
    max_decoded_bytes: 512 << 20,
};

/// Small limits for the whole pipeline, so that every input runs in milliseconds.
const SMALL_LIMITS: Limits = Limits {
    max_pixels: 1 << 20,
    max_side: 4096,
    max_decoded_bytes: 64 << 20,
};

/// Fails on a panic the pipeline caught: hostile input must be refused, not crash a step.
fn not_panicked<T>(result: Result<T, PipelineError>) -> Result<T, PipelineError> {
    if let Err(PipelineError::Panicked(message)) = &result {
        panic!("a pipeline step panicked: {message}");
    }
    result
}

/// `pipeline::probe` (sniff, header walk, limits, work budget), as the request path runs it
/// on an upload's head: never says yes to an image the limits refuse.
pub fn probe(data: &[u8]) {
    if let Ok(probe) = not_panicked(pipeline::probe(data, &DEFAULT_LIMITS)) {
        assert!(probe.width > 0 && probe.height > 0);
        assert!(DEFAULT_LIMITS.check(probe.width, probe.height).is_ok());
    }
}

/// The completeness check and header walk of the sniffed container, as the worker runs them
/// on a whole staged upload.
pub fn complete(data: &[u8]) {
    if let Ok(format) = sniff::image_format(data) {
        let container = Container::of(format);
        let _ = container.check_complete(data);
        let _ = container.header(data);
    }
}

/// Metadata stripping. The first byte picks the orientation written back (1–8), the rest is
/// the file. What comes out is the same format with the same header size.
pub fn strip(input: &[u8]) {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let Ok(format) = sniff::image_format(data) else {
        return;
    };
    let container = Container::of(format);
    if let Ok(stripped) = container.strip(data, first % 8 + 1) {
        assert_eq!(sniff::image_format(&stripped).ok(), Some(format));
        if let Ok(before) = container.header(data) {
            let after = container
                .header(&stripped)
                .expect("the stripped file's header reads");
            assert_eq!(before.size, after.size, "stripping changed the size");
        }
    }
}

/// The worker's whole step on small inputs: `prepare` then `finish` (two variants, the
/// blurhash, the stripped original).
pub fn pipeline(data: &[u8]) {
    let spec = OutputSpec {
        variants: vec![
            VariantSpec {
                name: "sm".into(),
                width: 64,
                height: Some(64),
                fit: Fit::Cover,
            },
            VariantSpec {
                name: "md".into(),
                width: 160,
                height: None,
                fit: Fit::Inside,
            },
        ],
        quality: 75.0,
        keep_original: true,
    };
    let Ok(prepared) = not_panicked(pipeline::prepare(data, &SMALL_LIMITS)) else {
        return;
    };
    if let Ok(done) = not_panicked(pipeline::finish(data, &prepared, &spec)) {
        assert_eq!(done.variants.len(), 2);
        assert!(done.width > 0 && done.height > 0);
    }
}

/// The upload route in process on the embedded default (SQLite, local storage, no worker).
pub struct UploadRoute {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _dir: tempfile::TempDir,
}

impl UploadRoute {
    /// A fresh data folder; fairness caps out of the way, since accepted uploads stay pending.
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ximagepipeline.toml");
        std::fs::write(
            &file,
            "[fairness]\nmax_pending_per_source = 1000000000\nmax_pending_per_client = 1000000000\n",
        )
        .unwrap();
        let mut flags = toml::Table::new();
        flags.insert(
            "data_dir".into(),
            dir.path().join("data").display().to_string().into(),
        );
        let config = Config::load(Some(&file), std::iter::empty(), flags).unwrap();
        let router = runtime
            .block_on(ImagePipeline::open(config))
            .unwrap()
            .router();
        Self {
            runtime,
            router,
            _dir: dir,
        }
    }

    /// Posts `body` as a multipart form with boundary `xip`: the answer is a 202 or a 4xx,
    /// whatever the body.
    pub fn upload(&self, body: &[u8]) {
        let request = Request::post("/image-pipeline/upload")
            .header(header::CONTENT_TYPE, "multipart/form-data; boundary=xip")
            .body(Body::from(body.to_vec()))
            .unwrap();
        let response = self
            .runtime
            .block_on(self.router.clone().oneshot(request))
            .unwrap();
        let status = response.status().as_u16();
        assert!(
            status == 202 || (400..500).contains(&status),
            "a client's body answered {status}"
        );
    }
}

impl Default for UploadRoute {
    fn default() -> Self {
        Self::new()
    }
}
