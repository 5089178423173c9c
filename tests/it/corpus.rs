//! Every row of `../shared/corpus/MANIFEST.tsv` through the HTTP service: accepted files end
//! COMPLETE with the manifest's displayed size and clean WebP variants of the right sizes;
//! refused files get a 4xx at upload or end FAILED with a reason. Failures are collected and
//! reported together. Orientation files must come out upright.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{ManifestRow, TestServer, manifest, webp_size};

/// Formats this build reads (every format the service knows, AVIF/HEIF with the `heif`
/// feature); all of them are enabled below, and anything else must be refused at upload.
const READ_FORMATS: &[&str] = &[
    "JPEG",
    "PNG",
    "WebP",
    "GIF",
    "TIFF",
    #[cfg(feature = "heif")]
    "AVIF",
    #[cfg(feature = "heif")]
    "HEIF",
];

/// Rows where the corpus README allows another outcome than the `expected` column.
const ALSO_ACCEPTABLE: &[(&str, &str)] = &[
    // "rejecting it as unsupported-format is also acceptable": browsers cannot show it.
    (
        "valid/jpeg_lossless_sof3.jpg",
        "lossless JPEG is not supported",
    ),
];

/// Outputs allowed to hold a forbidden string, and why (none today: GIF originals have their
/// LZW data re-coded, so even `<?php` hidden in pixel data does not survive).
const FORBIDDEN_EXEMPT: &[(&str, &str)] = &[];

fn config() -> String {
    let allowed: Vec<String> = ximagepipeline::config::SUPPORTED_MIME_TYPES
        .iter()
        .map(|m| format!("{m:?}"))
        .collect();
    format!(
        "allowed_mime_types = [{}]\n[source_types.all]\nvariants = [\"xs\", \"sm\", \"md\", \"lg\"]\nquality = 80\n\
         # The whole manifest is uploaded for one source before any job runs.\n\
         [fairness]\nmax_pending_per_source = 10000\n",
        allowed.join(", ")
    )
}

/// The size a variant must have for a `w`×`h` image (never enlarged).
fn expected_size(name: &str, w: u32, h: u32) -> (u32, u32) {
    match name {
        "xs" | "sm" => {
            let side = if name == "xs" { 64 } else { 256 };
            let s = w.min(h).min(side);
            (s, s)
        }
        "md" | "lg" => {
            let bound = if name == "md" { 640 } else { 1280 };
            if w <= bound {
                (w, h)
            } else {
                (
                    bound,
                    (f64::from(h) * f64::from(bound) / f64::from(w)).round() as u32,
                )
            }
        }
        _ => unreachable!(),
    }
}

/// Bytes that must never reach an output.
const FORBIDDEN: &[&[u8]] = &[
    b"<?php",
    b"http://ns.adobe.com/xap/",
    b"Photoshop 3.0",
    b"<rdf:RDF", // an XMP packet with content (an empty `<x:xmpmeta/>` placeholder holds none)
    b"GPSInfo",
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The RIFF chunk names of a WebP file.
fn webp_chunks(bytes: &[u8]) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut at = 12;
    while at + 8 <= bytes.len() {
        chunks.push(String::from_utf8_lossy(&bytes[at..at + 4]).into_owned());
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        at += 8 + len + (len & 1);
    }
    chunks
}

/// Checks one accepted row's final answer; returns its decoded `md` variant for the upright check.
async fn check_complete(
    server: &TestServer,
    row: &ManifestRow,
    body: &Value,
) -> Result<image::RgbImage, String> {
    let media = &body["media"];
    let (w, h) = (
        media["width"].as_u64().unwrap() as u32,
        media["height"].as_u64().unwrap() as u32,
    );
    if let Some(display) = row.display_size()
        && display != (w, h)
    {
        return Err(format!(
            "displayed {w}×{h}, manifest says {}×{}",
            display.0, display.1
        ));
    }
    let mut md = None;
    for (name, url) in media["urls"].as_object().unwrap() {
        let bytes = server.fetch(url.as_str().unwrap()).await;
        let size = webp_size(&bytes);
        let want = expected_size(name, w, h);
        if size.0 != want.0 || size.1.abs_diff(want.1) > 1 {
            return Err(format!("{name} is {size:?}, expected {want:?}"));
        }
        let chunks = webp_chunks(&bytes);
        if chunks
            .iter()
            .any(|c| c == "EXIF" || c == "XMP " || c == "ICCP")
        {
            return Err(format!("{name} carries metadata chunks {chunks:?}"));
        }
        if name == "md" {
            md = Some(image::load_from_memory(&bytes).unwrap().to_rgb8());
        }
    }
    let original = server.fetch(media["originalUrl"].as_str().unwrap()).await;
    let exempt = |needle: &[u8]| {
        FORBIDDEN_EXEMPT
            .iter()
            .any(|(p, n)| *p == row.path() && n.as_bytes() == needle)
    };
    if let Some(bad) = FORBIDDEN
        .iter()
        .find(|n| contains(&original, n) && !exempt(n))
    {
        return Err(format!(
            "original still holds {:?}",
            String::from_utf8_lossy(bad)
        ));
    }
    Ok(md.unwrap())
}

fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manifest_row_gives_its_expected_outcome() {
    let server = TestServer::start_with(&config()).await;
    let rows = manifest();
    assert!(rows.len() > 100, "manifest read");
    let mut failures = Vec::new();
    let mut jobs = Vec::new();
    for row in &rows {
        let (code, body) = server.upload(row.bytes(), "all", "corpus").await;
        let readable = READ_FORMATS.iter().any(|f| row.format().starts_with(f));
        match code {
            StatusCode::ACCEPTED => jobs.push((row, body["jobId"].as_str().unwrap().to_owned())),
            c if c.is_client_error() && body["error"].as_str().is_some_and(|e| !e.is_empty()) => {
                let alternative = ALSO_ACCEPTABLE.iter().any(|(p, msg)| {
                    *p == row.path() && body["error"].as_str().is_some_and(|e| e.contains(msg))
                });
                if readable && row.expected() == "accept" && !alternative {
                    failures.push(format!("{}: refused at upload: {body}", row.path()));
                }
            }
            c => failures.push(format!("{}: upload answered {c}: {body}", row.path())),
        }
    }
    let drains = (0..2).map(|n| {
        let pipeline = server.pipeline.clone();
        tokio::spawn(async move {
            pipeline
                .admin()
                .run_pending_jobs(&format!("corpus-{n}"))
                .await
        })
    });
    futures::future::join_all(drains).await;

    let mut upright: HashMap<String, image::RgbImage> = HashMap::new();
    let mut orientation_checks = Vec::new();
    for (row, job) in jobs {
        let (code, body) = server.get(&format!("/image-pipeline/status/{job}")).await;
        let readable = READ_FORMATS.iter().any(|f| row.format().starts_with(f));
        match (body["status"].as_str(), row.expected()) {
            (Some("COMPLETE"), "accept" | "any") if readable => {
                match check_complete(&server, row, &body).await {
                    Ok(md) => {
                        let name = row.path().rsplit('/').next().unwrap();
                        if let Some(kind) = ["Landscape_", "Portrait_"]
                            .iter()
                            .find(|k| name.starts_with(**k))
                        {
                            if name.ends_with("_1.jpg") {
                                upright.insert(kind.to_string(), md);
                            } else {
                                orientation_checks.push((
                                    row.path().to_owned(),
                                    kind.to_string(),
                                    md,
                                ));
                            }
                        }
                    }
                    Err(e) => failures.push(format!("{}: {e}", row.path())),
                }
            }
            (Some("FAILED"), expected) if expected != "accept" => {
                if body["error"].as_str().is_none_or(str::is_empty)
                    || body["code"].as_str().is_none_or(str::is_empty)
                    || code != StatusCode::INTERNAL_SERVER_ERROR
                {
                    failures.push(format!("{}: FAILED without a reason: {body}", row.path()));
                }
            }
            _ => failures.push(format!(
                "{}: expected {}, got {code} {body}",
                row.path(),
                row.expected()
            )),
        }
    }
    assert_eq!(upright.len(), 2, "Landscape_1 and Portrait_1 processed");
    for (path, kind, md) in orientation_checks {
        let reference = &upright[&kind];
        if md.dimensions() != reference.dimensions() {
            failures.push(format!(
                "{path}: {:?} vs upright {:?}",
                md.dimensions(),
                reference.dimensions()
            ));
            continue;
        }
        let diff = mean_abs_diff(&md, reference);
        if diff > 12.0 {
            failures.push(format!(
                "{path}: not upright (mean difference {diff:.1} from the _1 file)"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let staging: Vec<_> = server
        .stored_keys()
        .await
        .into_iter()
        .filter(|k| k.starts_with("staging/"))
        .collect();
    assert!(staging.is_empty(), "staging left behind: {staging:?}");
}
