//! The work budget: files whose header shows more decoding work than `max_decoded_bytes`, or
//! a compressed chunk that inflates past its cap, are refused from the header.
//!
//! How the tests know nothing was decoded: the crafted files carry no decodable image data
//! (their IDAT or LZW data is a few junk bytes), so any decoder would fail with `Corrupt` or
//! `Decode`; `OverBudget` can only come from the header check that runs first.

use reqwest::StatusCode;
use ximagepipeline::pipeline::{self, Limits, PipelineError};

use crate::common::TestServer;

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_side: 20_000,
    max_decoded_bytes: 512 << 20,
};

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut checked = kind.to_vec();
    checked.extend_from_slice(data);
    out.extend_from_slice(&crc32(&checked).to_be_bytes());
    out
}

/// A PNG with this IHDR, `extra` chunks, and junk for image data.
fn png(width: u32, height: u32, depth: u8, colour: u8, extra: &[Vec<u8>]) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[depth, colour, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    for c in extra {
        out.extend_from_slice(c);
    }
    out.extend(chunk(b"IDAT", b"junk"));
    out.extend(chunk(b"IEND", b""));
    out
}

/// An `iCCP` chunk whose profile inflates to `inflated` bytes.
fn iccp(inflated: usize) -> Vec<u8> {
    let mut data = b"icc\0\0".to_vec();
    data.extend(miniz_oxide::deflate::compress_to_vec_zlib(
        &vec![0u8; inflated],
        6,
    ));
    chunk(b"iCCP", &data)
}

/// A GIF with a `width`×`height` screen and `frames` frames of that size, each with a few
/// bytes of (undecodable) LZW data.
fn gif(width: u16, height: u16, frames: usize) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0]);
    for _ in 0..frames {
        out.push(0x2C);
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&width.to_le_bytes());
        out.extend_from_slice(&height.to_le_bytes());
        out.extend_from_slice(&[0, 2, 2, 0x44, 0x01, 0]);
    }
    out.push(0x3B);
    out
}

fn over_budget(result: Result<pipeline::Probe, PipelineError>) -> (&'static str, Option<u64>) {
    match result {
        Err(PipelineError::OverBudget { what, needed, .. }) => (what, needed),
        other => panic!("expected OverBudget, got {other:?}"),
    }
}

#[test]
fn a_sixteen_bit_rgba_png_over_the_budget_is_refused_from_its_header() {
    // 10000×10000 × 4 channels × 2 bytes = 800 MB, within the pixel limit.
    let deep = png(10_000, 10_000, 16, 6, &[]);
    assert_eq!(
        over_budget(pipeline::probe(&deep, &LIMITS)),
        ("decoding", Some(800_000_000))
    );
    assert!(matches!(
        pipeline::prepare(&deep, &LIMITS),
        Err(PipelineError::OverBudget { .. })
    ));
    // The same at 8 bits a sample is 400 MB: within the budget.
    let probe = pipeline::probe(&png(10_000, 10_000, 8, 6, &[]), &LIMITS).unwrap();
    assert_eq!((probe.width, probe.height), (10_000, 10_000));
}

#[test]
fn a_png_whose_icc_profile_inflates_past_the_cap_is_refused_before_decoding() {
    let bomb = png(64, 64, 8, 2, &[iccp(64 << 20)]);
    assert!(bomb.len() < 200_000, "{} bytes", bomb.len());
    assert_eq!(
        over_budget(pipeline::probe(&bomb, &LIMITS)),
        ("PNG iCCP", None)
    );
    assert!(matches!(
        pipeline::prepare(&bomb, &LIMITS),
        Err(PipelineError::OverBudget { .. })
    ));
    // A profile of ordinary size passes the header check.
    assert!(pipeline::probe(&png(64, 64, 8, 2, &[iccp(4096)]), &LIMITS).is_ok());
}

#[test]
fn a_gif_of_many_huge_frames_is_refused_for_the_frames_stripping_would_recode() {
    let flood = gif(10_000, 10_000, 200);
    let (what, needed) = over_budget(pipeline::probe(&flood, &LIMITS));
    assert_eq!(what, "decoding");
    assert_eq!(needed, Some(400_000_000 + 199 * 100_000_000));
    // Two such frames: the first decoded (400 MB) and one re-coded (100 MB) fit.
    assert!(pipeline::probe(&gif(10_000, 10_000, 2), &LIMITS).is_ok());
}

#[tokio::test]
async fn over_budget_uploads_are_422_and_leave_nothing_behind() {
    let server = TestServer::start().await;
    for file in [
        png(10_000, 10_000, 16, 6, &[]),
        png(64, 64, 8, 2, &[iccp(64 << 20)]),
        gif(10_000, 10_000, 200),
    ] {
        let (status, body) = server.upload(file, "avatar", "u1").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["code"], "OVER_BUDGET", "{body}");
    }
    assert_eq!(server.stored_keys().await, Vec::<String>::new());
}

#[tokio::test]
async fn frames_past_the_probe_window_fail_the_job_over_budget_before_decoding() {
    // Small frames fill the first MiB (the intake's window), huge ones follow.
    let mut file = gif(10_000, 10_000, 0);
    file.pop();
    let small: Vec<u8> = gif(1, 1, 1)[13..].to_vec();
    let small = &small[..small.len() - 1];
    while file.len() < 1 << 20 {
        file.extend_from_slice(small);
    }
    let huge = gif(10_000, 10_000, 200);
    file.extend_from_slice(&huge[13..]);
    let server = TestServer::start().await;
    let (status, body) = server.upload(file, "avatar", "u1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    server.drain().await;
    let (status, job) = server.status_of(&body).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{job}");
    assert_eq!(job["status"], "FAILED");
    assert!(
        job["error"].as_str().unwrap().contains("work budget"),
        "{job}"
    );
    assert_eq!(job["attempts"], 1, "over budget is not retried: {job}");
}
