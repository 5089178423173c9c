//! `ximagepipeline process`: the pipeline on local files, no server or database. Each file's
//! result (or error) is one JSON line on standard output, for scripts; people on a terminal
//! also get a progress bar and a summary on standard error.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use ximagepipeline::Config;
use ximagepipeline::pipeline::{self, sniff::Sniffed};
use ximagepipeline::worker::Failure;

use super::{CommonArgs, ProcessArgs, load_config};

/// When to show the progress bar and the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowProgress {
    /// When standard error is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Processes every file, `jobs` at a time; fails (exit 1) when any file did.
pub fn run(args: ProcessArgs) -> anyhow::Result<ExitCode> {
    let common = CommonArgs {
        data_dir: None,
        config: args.config.clone(),
    };
    let config = load_config(&common, None)?;
    let spec = config
        .output_spec(&args.source_type)
        .with_context(|| format!("unknown source type {:?}", args.source_type))?;
    let show = match args.progress {
        ShowProgress::Auto => std::io::stderr().is_terminal(),
        ShowProgress::Always => true,
        ShowProgress::Never => false,
    };
    let progress = Progress::new(args.files.len(), show);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            scope.spawn(|| {
                while let Some(file) = args.files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    progress.started(file);
                    let outcome = process_file(&config, &spec, file, &args.out);
                    let line = match &outcome {
                        Ok(done) => done.line.clone(),
                        Err(failed) => json!({ "file": file, "error": failed.message }),
                    };
                    // One line per file, whole, whatever the bar is drawing.
                    progress.bar.suspend(|| println!("{line}"));
                    progress.finished(outcome);
                }
            });
        }
    });
    let summary = progress.finish();
    Ok(if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A file done: its JSON line and what the summary adds up.
struct Done {
    line: serde_json::Value,
    bytes_in: u64,
    bytes_out: u64,
    pixels: u64,
}

/// A file that failed: why, in words and as a code.
struct Failed {
    message: String,
    reason: &'static str,
}

impl Failed {
    fn new(reason: &'static str, message: String) -> Failed {
        Failed { message, reason }
    }
}

/// Processes one file into `out/<file name>/`.
fn process_file(
    config: &Config,
    spec: &pipeline::OutputSpec,
    file: &Path,
    out: &Path,
) -> Result<Done, Failed> {
    let started = Instant::now();
    let bytes = std::fs::read(file).map_err(|e| {
        Failed::new(
            "UNREADABLE_FILE",
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    if let Sniffed::Image(format) = pipeline::sniff::detect(&bytes)
        && !config.allowed_mime_types.iter().any(|m| m == format.mime())
    {
        let message = format!("File type {} not allowed", format.mime());
        return Err(Failed::new("TYPE_NOT_ALLOWED", message));
    }
    let processed = pipeline::process(&bytes, spec, &config.limits).map_err(|e| {
        let message = e.to_string();
        let reason = Failure::from(e)
            .fault()
            .map_or("INTERNAL", |f| f.code.as_str());
        Failed::new(reason, message)
    })?;
    let name = file
        .file_name()
        .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned());
    let dir = out.join(&name);
    let unwritable = |path: &Path, e: std::io::Error| {
        Failed::new(
            "UNWRITABLE_OUTPUT",
            format!("cannot write {}: {e}", path.display()),
        )
    };
    std::fs::create_dir_all(&dir).map_err(|e| unwritable(&dir, e))?;
    let write = |file_name: String, bytes: &[u8]| {
        let path = dir.join(file_name);
        std::fs::write(&path, bytes).map_err(|e| unwritable(&path, e))?;
        Ok::<_, Failed>(path)
    };
    let mut variants = serde_json::Map::new();
    let mut bytes_out = 0;
    for v in &processed.variants {
        let path = write(format!("{}.webp", v.name), &v.webp)?;
        bytes_out += v.webp.len() as u64;
        variants.insert(
            v.name.clone(),
            json!({ "path": path, "width": v.width, "height": v.height, "bytes": v.webp.len() }),
        );
    }
    let original = match processed.original.as_deref() {
        Some(bytes) => {
            bytes_out += bytes.len() as u64;
            Some(write(
                format!("original.{}", processed.format.extension()),
                bytes,
            )?)
        }
        None => None,
    };
    let line = json!({
        "file": file,
        "format": processed.format.name().to_ascii_lowercase(),
        "width": processed.width,
        "height": processed.height,
        "aspectRatio": processed.aspect_ratio,
        "blurhash": processed.blurhash,
        "variants": variants,
        "original": original,
        "ms": started.elapsed().as_millis() as u64,
    });
    Ok(Done {
        line,
        bytes_in: bytes.len() as u64,
        bytes_out,
        pixels: u64::from(processed.width) * u64::from(processed.height),
    })
}

/// The bar (files done, images/s, the file being read) and the tally behind the summary.
struct Progress {
    bar: ProgressBar,
    show: bool,
    started: Instant,
    tally: Mutex<Summary>,
}

/// What a run did.
#[derive(Debug, Default)]
struct Summary {
    files: usize,
    succeeded: usize,
    /// Failures by reason (a job code such as `UNREADABLE_IMAGE`, or a file error).
    failed: BTreeMap<&'static str, usize>,
    pixels: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl Progress {
    fn new(files: usize, show: bool) -> Progress {
        let bar = ProgressBar::with_draw_target(
            Some(files as u64),
            match show {
                true => ProgressDrawTarget::stderr(),
                false => ProgressDrawTarget::hidden(),
            },
        );
        let style = ProgressStyle::with_template(
            "{bar:30.cyan/blue} {pos}/{len} files · {per_sec} · {elapsed} · {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("█▉▊▋▌▍▎▏ ");
        bar.set_style(style.with_key("per_sec", per_second));
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            bar,
            show,
            started: Instant::now(),
            tally: Mutex::new(Summary::default()),
        }
    }

    fn started(&self, file: &Path) {
        let name = file.file_name().unwrap_or(file.as_os_str());
        self.bar.set_message(name.to_string_lossy().into_owned());
    }

    fn finished(&self, outcome: Result<Done, Failed>) {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        tally.files += 1;
        match outcome {
            Ok(done) => {
                tally.succeeded += 1;
                tally.pixels += done.pixels;
                tally.bytes_in += done.bytes_in;
                tally.bytes_out += done.bytes_out;
            }
            Err(failed) => *tally.failed.entry(failed.reason).or_default() += 1,
        }
        self.bar.inc(1);
    }

    /// Clears the bar and prints the summary (when shown); the tally.
    fn finish(self) -> Summary {
        self.bar.finish_and_clear();
        let summary = self.tally.into_inner().unwrap_or_else(|e| e.into_inner());
        if self.show {
            eprintln!("{}", summary.describe(self.started.elapsed()));
        }
        summary
    }
}

/// `images/s`, as the bar shows the rate.
fn per_second(state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write) {
    let _ = write!(out, "{:.1} images/s", state.per_sec());
}

impl Summary {
    /// E.g. `12 files: 11 succeeded, 1 failed (UNREADABLE_IMAGE 1) · 140.2 MP in 3.1 s,
    /// 45.2 MP/s · 38.1 MB in, 9.7 MB out`.
    fn describe(&self, elapsed: Duration) -> String {
        let failed: usize = self.failed.values().sum();
        let noun = if self.files == 1 { "file" } else { "files" };
        let mut text = format!(
            "{} {noun}: {} succeeded, {failed} failed",
            self.files, self.succeeded
        );
        if failed > 0 {
            let reasons: Vec<String> = self
                .failed
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            text.push_str(&format!(" ({})", reasons.join(", ")));
        }
        let megapixels = self.pixels as f64 / 1e6;
        let secs = elapsed.as_secs_f64().max(1e-9);
        text.push_str(&format!(
            " · {megapixels:.1} MP in {secs:.1} s, {:.1} MP/s · {} in, {} out",
            megapixels / secs,
            megabytes(self.bytes_in),
            megabytes(self.bytes_out),
        ));
        text
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_each_reason_of_failure() {
        let summary = Summary {
            files: 4,
            succeeded: 2,
            failed: BTreeMap::from([("UNREADABLE_IMAGE", 1), ("TYPE_NOT_ALLOWED", 1)]),
            pixels: 24_000_000,
            bytes_in: 5_000_000,
            bytes_out: 1_250_000,
        };
        assert_eq!(
            summary.describe(Duration::from_secs(2)),
            "4 files: 2 succeeded, 2 failed (TYPE_NOT_ALLOWED 1, UNREADABLE_IMAGE 1) · \
             24.0 MP in 2.0 s, 12.0 MP/s · 5.0 MB in, 1.2 MB out"
        );
    }
}
