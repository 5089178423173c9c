//! The shared test corpus as a table: one case per `MANIFEST.tsv` row, named by its path.
//!
//! Every row, whatever its format, goes through `process` with the gallery spec. Accepted rows
//! are checked for displayed size, variants without metadata chunks, and an original without
//! metadata whose pixels decode as before (with `image`, or libheif for HEIF/AVIF). Failures
//! are collected and reported together. Colour, orientation and quality have their own tests;
//! the colour references are lcms numbers (Pillow 13 `ImageCms`, perceptual intent), computed
//! once and kept here, so they do not share code with moxcms.
//!
//! A build without the `heif` feature runs every test; only the AVIF/HEIF files are left out,
//! and each test says on stderr how many it left out.

use std::time::{Duration, Instant};

use image::{DynamicImage, GenericImageView};
use ximagepipeline::pipeline::format::{gif, heif};
use ximagepipeline::pipeline::shrink::Needs;
use ximagepipeline::pipeline::{
    self, Fit, ImageFormat, Limits, OutputSpec, PipelineError, VariantSpec, decode, orient,
};

use crate::common::{ManifestRow, Skipped, corpus_bytes, manifest, manifest_row};

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_side: 20_000,
    max_decoded_bytes: 512 << 20,
};

fn gallery() -> OutputSpec {
    let inside = |name: &str, width| VariantSpec {
        name: name.into(),
        width,
        height: None,
        fit: Fit::Inside,
    };
    OutputSpec {
        variants: vec![inside("md", 640), inside("lg", 1280), inside("xl", 1920)],
        quality: 80.0,
        keep_original: true,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn image_format(format: ImageFormat) -> Option<image::ImageFormat> {
    match format {
        ImageFormat::Jpeg => Some(image::ImageFormat::Jpeg),
        ImageFormat::Png => Some(image::ImageFormat::Png),
        ImageFormat::Webp => Some(image::ImageFormat::WebP),
        ImageFormat::Gif => Some(image::ImageFormat::Gif),
        ImageFormat::Tiff => Some(image::ImageFormat::Tiff),
        ImageFormat::Avif | ImageFormat::Heic => None,
    }
}

/// The RIFF chunk ids of a WebP file.
fn webp_chunks(webp: &[u8]) -> Vec<[u8; 4]> {
    let mut out = Vec::new();
    let mut at = 12;
    while at + 8 <= webp.len() {
        out.push([webp[at], webp[at + 1], webp[at + 2], webp[at + 3]]);
        let size = u32::from_le_bytes([webp[at + 4], webp[at + 5], webp[at + 6], webp[at + 7]]);
        at += 8 + size as usize + (size as usize & 1);
    }
    out
}

/// The EXIF blocks of an original, read by `image` (JPEG/PNG/WebP/GIF) or from the HEIF
/// items; TIFF metadata is checked by tag instead ([`tiff_metadata_tags`]). An original the
/// reader cannot open is an error, never "no EXIF".
fn exif_of(original: &[u8], format: ImageFormat) -> Result<Vec<Vec<u8>>, String> {
    use image::ImageDecoder;
    match (format, image_format(format)) {
        (ImageFormat::Avif | ImageFormat::Heic, _) => heif::layout(original)
            .map(|l| l.exif.into_iter().map(|r| original[r].to_vec()).collect())
            .map_err(|e| format!("the original's boxes do not read: {e}")),
        (ImageFormat::Tiff, _) => Ok(Vec::new()),
        (_, Some(f)) => {
            let reader = image::ImageReader::with_format(std::io::Cursor::new(original), f);
            let exif = reader
                .into_decoder()
                .and_then(|mut d| d.exif_metadata())
                .map_err(|e| format!("the original's EXIF does not read: {e}"))?;
            Ok(exif.into_iter().collect())
        }
        (other, None) => Err(format!("no EXIF reader for {other:?}")),
    }
}

/// Whether an EXIF block holds nothing but (at most) an Orientation tag.
fn exif_is_minimal(exif: &[u8]) -> bool {
    let tiff = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    // HEIF items start with a 4-byte offset to the TIFF header.
    let tiff = if tiff.len() > 4 && tiff[..4] == [0, 0, 0, 0] && tiff[4..6] == *b"MM" {
        &tiff[4..]
    } else {
        tiff
    };
    if tiff.iter().all(|&b| b == 0) {
        return true;
    }
    let big = tiff.starts_with(b"MM");
    let u16_at = |at: usize| -> Option<u16> {
        let b = tiff.get(at..at + 2)?;
        Some(if big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = tiff.get(at..at + 4)?;
        Some(if big {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        })
    };
    let Some(ifd) = u32_at(4) else { return false };
    let Some(count) = u16_at(ifd as usize) else {
        return false;
    };
    let tags: Vec<Option<u16>> = (0..count)
        .map(|i| u16_at(ifd as usize + 2 + 12 * usize::from(i)))
        .collect();
    let next = u32_at(ifd as usize + 2 + 12 * usize::from(count));
    count <= 1 && tags.iter().all(|t| *t == Some(0x0112)) && next == Some(0)
}

/// TIFF tags that carry metadata; none may remain in the first page of a stripped TIFF.
const TIFF_METADATA_TAGS: &[u16] = &[
    270, 271, 272, 305, 306, 315, 316, 33432, 33723, 34377, 34665, 34853, 700, 37724,
];

/// The metadata tags left in a TIFF's first page; a tag that is there but does not read
/// counts as left.
fn tiff_metadata_tags(original: &[u8]) -> Result<Vec<u16>, String> {
    let mut decoder = tiff::decoder::Decoder::new(std::io::Cursor::new(original))
        .map_err(|e| format!("the original does not open as TIFF: {e}"))?;
    Ok(TIFF_METADATA_TAGS
        .iter()
        .copied()
        .filter(|&tag| !matches!(decoder.find_tag(tiff::tags::Tag::Unknown(tag)), Ok(None)))
        .collect())
}

/// Pixels of a file as RGBA8: `image` for most formats, libheif for HEIF/AVIF.
fn pixels(bytes: &[u8], format: ImageFormat) -> Result<Vec<u8>, String> {
    match image_format(format) {
        // image cannot open JPEG-in-TIFF pages; the pipeline's own decoder (tiff crate) can.
        Some(_) if format == ImageFormat::Tiff => {
            decode::first_frame(bytes, format, &LIMITS, &Needs::full_size())
                .map(|d| d.image.into_rgba8().into_raw())
                .map_err(|e| e.to_string())
        }
        Some(f) => image::load_from_memory_with_format(bytes, f)
            .map(|i| i.into_rgba8().into_raw())
            .map_err(|e| e.to_string()),
        #[cfg(feature = "heif")]
        None => heif::decode(bytes, format, &LIMITS)
            .map(|i| i.into_rgba8().into_raw())
            .map_err(|e| e.to_string()),
        // AVIF/HEIF rows are skipped in this build; reaching here is a test bug, said as such.
        #[cfg(not(feature = "heif"))]
        None => Err(format!("{format:?} needs the heif feature")),
    }
}

/// Checks one accepted row; returns the problems found.
fn check_accept(row: &ManifestRow, bytes: &[u8], processed: &pipeline::Processed) -> Vec<String> {
    let mut problems = Vec::new();
    let (dw, dh) = (row.number("display_width"), row.number("display_height"));
    if (Some(processed.width), Some(processed.height)) != (dw, dh) {
        problems.push(format!(
            "displayed {}x{}, manifest {dw:?}x{dh:?}",
            processed.width, processed.height
        ));
    }
    let want_ratio = pipeline::aspect_ratio(processed.width, processed.height);
    if processed.aspect_ratio != want_ratio || processed.blurhash.len() != 28 {
        problems.push(format!(
            "aspect {} / blurhash {:?}",
            processed.aspect_ratio, processed.blurhash
        ));
    }
    for (variant, spec) in processed.variants.iter().zip(&gallery().variants) {
        let plan = pipeline::resize::plan(processed.width, processed.height, spec);
        if variant.name != spec.name || (variant.width, variant.height) != (plan.width, plan.height)
        {
            problems.push(format!(
                "variant {} is {}x{}, expected {}x{}",
                variant.name, variant.width, variant.height, plan.width, plan.height
            ));
        }
        if variant.width > processed.width || variant.height > processed.height {
            problems.push(format!("variant {} enlarges", variant.name));
        }
        match image::load_from_memory_with_format(&variant.webp, image::ImageFormat::WebP) {
            Ok(img) if img.dimensions() == (variant.width, variant.height) => {}
            Ok(img) => problems.push(format!(
                "variant {} decodes as {:?}",
                variant.name,
                img.dimensions()
            )),
            Err(err) => problems.push(format!("variant {} does not decode: {err}", variant.name)),
        }
        let chunks = webp_chunks(&variant.webp);
        if contains(&variant.webp, b"<?php")
            || chunks
                .iter()
                .any(|c| matches!(c, b"EXIF" | b"XMP " | b"ICCP"))
        {
            problems.push(format!(
                "variant {} carries metadata: {:?}",
                variant.name,
                chunks
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
            ));
        }
    }
    if processed.variants.len() != 3 {
        problems.push(format!("{} variants", processed.variants.len()));
    }
    let Some(original) = &processed.original else {
        problems.push("no original".into());
        return problems;
    };
    for needle in [
        &b"<?php"[..],
        b"http://ns.adobe.com/xap",
        b"Photoshop 3.0",
        b"PK\x03\x04",
        b"GPSInfo",
    ] {
        if contains(original, needle) {
            problems.push(format!(
                "original still holds {:?}",
                String::from_utf8_lossy(needle)
            ));
        }
    }
    match exif_of(original, processed.format) {
        Ok(blocks) => {
            for exif in blocks.iter().filter(|exif| !exif_is_minimal(exif)) {
                problems.push(format!("original keeps a {}-byte EXIF block", exif.len()));
            }
        }
        Err(err) => problems.push(err),
    }
    if processed.format == ImageFormat::Tiff {
        match tiff_metadata_tags(original) {
            Ok(tags) if tags.is_empty() => {}
            Ok(tags) => problems.push(format!("original keeps TIFF metadata tags {tags:?}")),
            Err(err) => problems.push(err),
        }
    }
    match (
        pixels(bytes, processed.format),
        pixels(original, processed.format),
    ) {
        (Ok(a), Ok(b)) if a == b => {}
        (Ok(_), Ok(_)) => problems.push("original's pixels changed".into()),
        (_, Err(err)) => problems.push(format!("stripped original does not decode: {err}")),
        // No input the pipeline accepts is unreadable here today; one that is cannot pass
        // unchecked.
        (Err(err), Ok(_)) => problems.push(format!("the input does not decode to compare: {err}")),
    }
    problems
}

/// Mean absolute difference of two images at 48×48.
fn mean_abs_diff(a: &DynamicImage, b: &DynamicImage) -> f64 {
    let small = |img: &DynamicImage| {
        img.resize_exact(48, 48, image::imageops::FilterType::Triangle)
            .into_rgb8()
            .into_raw()
    };
    let (a, b) = (small(a), small(b));
    let total: u64 = a
        .iter()
        .zip(&b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.len().max(1) as f64
}

/// The decoded `md` variant of a corpus file; a missing file fails the test.
fn md_variant(path: &str) -> Result<DynamicImage, String> {
    let bytes = corpus_bytes(path);
    let processed = pipeline::process(&bytes, &gallery(), &LIMITS).map_err(|e| e.to_string())?;
    let md = processed.variants.first().ok_or("no variant")?;
    image::load_from_memory_with_format(&md.webp, image::ImageFormat::WebP)
        .map_err(|e| e.to_string())
}

#[test]
fn corpus_rows_behave_as_the_manifest_says() {
    let mut skipped = Skipped::new("corpus_rows_behave_as_the_manifest_says");
    let (mut passed, mut failures) = (0, Vec::new());
    let mut slowest = Vec::new();
    for row in &manifest() {
        if skipped.without_libheif(row) {
            continue;
        }
        let (path, format, expected) = (row.path(), row.format(), row.expected());
        let bytes = row.bytes();
        let started = Instant::now();
        let result = pipeline::process(&bytes, &gallery(), &LIMITS);
        let elapsed = started.elapsed();
        slowest.push((elapsed, path.to_string()));
        let mut problems = Vec::new();
        match (&result, expected) {
            (Err(PipelineError::Panicked(msg)), _) => problems.push(format!("panicked: {msg}")),
            (Ok(processed), "accept") => problems.extend(check_accept(row, &bytes, processed)),
            // The corpus README allows refusing lossless JPEG (browsers cannot show it).
            (Err(PipelineError::UnsupportedFeature { .. }), "accept")
                if path == "valid/jpeg_lossless_sof3.jpg" => {}
            (Err(err), "accept") => problems.push(format!("refused: {err}")),
            (Ok(_), reject) if reject.starts_with("reject") => {
                problems.push(format!("accepted, expected {reject}"))
            }
            _ => {}
        }
        if expected == "accept" && result.is_ok() {
            // The upload route probes the first MiB only.
            let prefix = &bytes[..bytes.len().min(1 << 20)];
            match pipeline::probe(prefix, &LIMITS) {
                Ok(probe) if Some(probe.width) == row.number("stored_width") || format == "GIF" => {
                }
                Ok(probe) => problems.push(format!("probe says {}x{}", probe.width, probe.height)),
                Err(err) => problems.push(format!("probe of the first MiB failed: {err}")),
            }
        }
        // How bombs are refused (from the header) is `bombs_are_refused_by_probe_quickly`.
        if expected == "reject:too-many-pixels" {
            let probed = pipeline::probe(&bytes, &LIMITS);
            if !matches!(probed, Err(PipelineError::TooManyPixels { .. })) {
                problems.push(format!("probe did not refuse the bomb: {probed:?}"));
            }
        }
        let outcome = match &result {
            Ok(p) => format!("ok {}x{}", p.width, p.height),
            Err(err) => format!("err: {err}"),
        };
        println!("{path:60} {expected:28} {elapsed:>10.1?}  {outcome}");
        if problems.is_empty() {
            passed += 1;
        } else {
            failures.push(format!("{path}: {}", problems.join("; ")));
        }
    }
    slowest.sort();
    println!(
        "\nslowest: {:?}",
        slowest.iter().rev().take(5).collect::<Vec<_>>()
    );
    println!("\npassed {passed}, failed {}", failures.len());
    skipped.report();
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn orientation_jpegs_come_out_upright() {
    let mut failures = Vec::new();
    for base in ["Landscape", "Portrait"] {
        let reference = match md_variant(&format!("orientation/{base}_1.jpg")) {
            Ok(img) => img,
            Err(err) => {
                failures.push(format!("{base}_1: {err}"));
                continue;
            }
        };
        // The check has teeth: a mirrored image is far from the reference.
        let mirrored = mean_abs_diff(&reference, &reference.fliph());
        if mirrored < 20.0 {
            failures.push(format!("{base}: mirrored differs by only {mirrored:.1}"));
        }
        for n in 0..=8 {
            let name = format!("{base}_{n}.jpg");
            match md_variant(&format!("orientation/{name}")) {
                Ok(img) if img.dimensions() != reference.dimensions() => failures.push(format!(
                    "{name}: {:?}, expected {:?}",
                    img.dimensions(),
                    reference.dimensions()
                )),
                Ok(img) => {
                    let diff = mean_abs_diff(&reference, &img);
                    println!("{name}: mean abs diff {diff:.2}");
                    if diff > 8.0 {
                        failures.push(format!("{name}: differs from {base}_1 by {diff:.1}"));
                    }
                }
                Err(err) => failures.push(format!("{name}: {err}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "orientation failures:\n{}",
        failures.join("\n")
    );
}

/// The corpus README: the 40,000-frame GIF may be read for its first frame only or refused by a
/// frame cap, and must not take more than a second or two.
#[test]
fn forty_thousand_frame_gif_is_quick() {
    use image::AnimationDecoder;
    let bytes = corpus_bytes("invalid/bomb_gif_40000_frames.gif");
    let started = Instant::now();
    let result = pipeline::process(&bytes, &gallery(), &LIMITS);
    let elapsed = started.elapsed();
    println!("processed in {elapsed:?}");
    match &result {
        Ok(processed) => assert_eq!((processed.width, processed.height), (1, 1)),
        Err(PipelineError::TooManyFrames { frames, .. }) => assert_eq!(*frames, 40_000),
        Err(err) => panic!("neither its first frame nor refused by a frame cap: {err}"),
    }
    // Only the first frame is decoded: with every later frame's LZW data made undecodable, the
    // decode gives the same pixels. A decoder that went on to frame 2 would fail on it.
    let first_frame_only = undecodable_after_first_frame(&bytes);
    // The check has teeth: reading the animation on to its second frame fails.
    let two_frames = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&first_frame_only))
        .unwrap()
        .into_frames()
        .take(2)
        .collect::<Result<Vec<_>, _>>();
    assert!(two_frames.is_err(), "frame 2 still decodes");
    assert_eq!(
        pipeline::prepare(&first_frame_only, &LIMITS).unwrap().image,
        pipeline::prepare(&bytes, &LIMITS).unwrap().image
    );
    // Time is this file's contract; the bound is generous (5× the README's "a second or two")
    // so that a loaded machine running an unoptimised build does not fail it.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

/// `bytes` (a GIF) with the LZW minimum code size of every frame after the first set to 0xFF, which no
/// decoder accepts; the block structure (and so the completeness check) is unchanged.
fn undecodable_after_first_frame(bytes: &[u8]) -> Vec<u8> {
    let layout = gif::walk(bytes, false).unwrap();
    let mut out = bytes.to_vec();
    let later_frames = layout
        .blocks
        .iter()
        .filter(|b| b.kind == gif::BlockKind::Image)
        .skip(1);
    for block in later_frames {
        // Descriptor (10 bytes), local colour table, then the minimum code size.
        let colour_table = gif::colour_table_len(bytes[block.range.start + 9]);
        out[block.range.start + 10 + colour_table] = 0xFF;
    }
    out
}

/// Mean RGB of an image (alpha ignored), as Pillow's `ImageStat.Stat(img.convert("RGB")).mean`.
fn mean_rgb(img: &DynamicImage) -> [f64; 3] {
    let rgb = img.to_rgb8();
    let mut sum = [0f64; 3];
    for p in rgb.pixels() {
        for (total, value) in sum.iter_mut().zip(p.0) {
            *total += f64::from(value);
        }
    }
    let n = f64::from(rgb.width() * rgb.height()).max(1.0);
    sum.map(|s| s / n)
}

#[test]
fn icc_and_cmyk_files_come_out_in_srgb() {
    // (file, lcms reference mean RGB, tolerance). References: Pillow 13 + lcms2,
    // `ImageCms.profileToProfile(img, embedded, sRGB, renderingIntent=0)`, mean of the result;
    // for the untagged CMYK JPEG, Pillow's Adobe-inverted CMYK -> RGB conversion.
    let cases: &[(&str, [f64; 3], f64)] = &[
        ("valid/jpeg_cmyk_icc.jpg", [120.95, 126.40, 115.23], 6.0),
        ("valid/jpeg_cmyk_no_icc.jpg", [109.04, 132.09, 109.59], 4.0),
        ("valid/png_display_p3_icc.png", [255.0, 0.0, 0.0], 6.0),
        ("valid/png_prophoto_icc.png", [117.0, 160.0, 210.0], 5.0),
        ("valid/tiff_cmyk.tif", [227.0, 6.0, 20.0], 8.0),
        ("valid/jpeg_gray_concert.jpg", [36.68, 36.68, 36.68], 3.0),
    ];
    let mut failures = Vec::new();
    for (path, want, tolerance) in cases {
        match md_variant(path) {
            Ok(img) => {
                let got = mean_rgb(&img);
                println!("{path}: mean {got:.1?}, lcms {want:?}");
                if got
                    .iter()
                    .zip(want)
                    .any(|(g, w)| (g - w).abs() > *tolerance)
                {
                    failures.push(format!(
                        "{path}: mean {got:.1?}, expected {want:?} ± {tolerance}"
                    ));
                }
            }
            Err(err) => failures.push(format!("{path}: {err}")),
        }
    }
    assert!(
        failures.is_empty(),
        "colour failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn hdr_and_deep_inputs_give_sensible_sdr() {
    let mut skipped = Skipped::new("hdr_and_deep_inputs_give_sensible_sdr");
    let mut failures = Vec::new();
    for path in [
        "valid/avif_hdr_rec2020_pq_10bit.avif",
        "valid/avif_10bit_odd_dims_fox.avif",
        "valid/avif_12bit_422_mono_fox.avif",
        "valid/heic_rgba_10bit_29x100.heif",
        "valid/png_16bit_photo_weld.png",
        "valid/tiff_16bit_rgb.tiff",
    ] {
        if skipped.without_libheif(&manifest_row(path)) {
            continue;
        }
        match md_variant(path) {
            Ok(img) => {
                let mean = mean_rgb(&img);
                let luma = 0.2126 * mean[0] + 0.7152 * mean[1] + 0.0722 * mean[2];
                println!("{path}: mean {mean:.1?}");
                if !(25.0..=230.0).contains(&luma) {
                    failures.push(format!("{path}: mean brightness {luma:.1}"));
                }
            }
            Err(err) => failures.push(format!("{path}: {err}")),
        }
    }
    skipped.report();
    assert!(
        failures.is_empty(),
        "deep-colour failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn orientation_in_every_container_is_upright() {
    // The crafted files are Landscape_1 at 600x400, stored rotated/flipped with EXIF (PNG, WebP,
    // TIFF) or irot (HEIC).
    let reference = md_variant("orientation/Landscape_1.jpg").unwrap();
    let mut skipped = Skipped::new("orientation_in_every_container_is_upright");
    let mut failures = Vec::new();
    for name in [
        "png_exif_orientation_6.png",
        "webp_exif_orientation_8.webp",
        "tiff_orientation_3.tiff",
        "heic_orientation_6_irot.heic",
    ] {
        let path = format!("orientation/{name}");
        if skipped.without_libheif(&manifest_row(&path)) {
            continue;
        }
        match md_variant(&path) {
            Ok(img) if img.dimensions() != (600, 400) => {
                failures.push(format!("{name}: {:?}", img.dimensions()))
            }
            Ok(img) => {
                let diff = mean_abs_diff(&reference, &img);
                let turned = mean_abs_diff(&reference, &img.rotate180());
                println!("{name}: diff {diff:.2} (rotated 180: {turned:.2})");
                if diff > 8.0 || turned < 20.0 {
                    failures.push(format!("{name}: differs from Landscape_1 by {diff:.1}"));
                }
            }
            Err(err) => failures.push(format!("{name}: {err}")),
        }
    }
    // libheif applies irot/imir: with them ignored, the AVIF/HEIC irot files would have their
    // stored (unrotated) size; the manifest's displayed sizes are checked in the corpus test, and
    // here the pixels of the HEIC irot=3 file are compared with the upright reference above.
    skipped.report();
    assert!(
        failures.is_empty(),
        "orientation failures:\n{}",
        failures.join("\n")
    );
}

/// Bombs are refused from their header, before a pixel is decoded: the refusal names the size
/// the header claims (the manifest's stored size), which no decoder could have allocated.
/// Speed follows from that (BENCHMARKS.md times sniff + probe); it is not asserted here.
#[test]
fn bombs_are_refused_by_probe_quickly() {
    let bombs: Vec<ManifestRow> = manifest()
        .into_iter()
        .filter(|r| r.expected() == "reject:too-many-pixels")
        .collect();
    assert!(!bombs.is_empty(), "no too-many-pixels rows in the manifest");
    let mut failures = Vec::new();
    for row in &bombs {
        let path = row.path();
        let result = pipeline::probe(&row.bytes(), &LIMITS);
        println!(
            "{path}: {:?}",
            result.as_ref().err().map(ToString::to_string)
        );
        let claimed = row.number("stored_width").zip(row.number("stored_height"));
        match result {
            Err(PipelineError::TooManyPixels { width, height, .. })
                if Some((width, height)) == claimed => {}
            other => failures.push(format!(
                "{path}: {other:?}, expected TooManyPixels at the header's {claimed:?}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "bomb failures:\n{}",
        failures.join("\n")
    );
}

/// Mean SSIM of two equally sized images, on BT.709 luma, 8×8 windows with a stride of 4
/// (Wang et al. 2004 constants, K1 = 0.01, K2 = 0.03, L = 255).
pub(crate) fn ssim(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let luma = |img: &image::RgbImage| -> Vec<f64> {
        img.pixels()
            .map(|p| {
                0.2126 * f64::from(p.0[0]) + 0.7152 * f64::from(p.0[1]) + 0.0722 * f64::from(p.0[2])
            })
            .collect()
    };
    let (x, y) = (luma(a), luma(b));
    let (w, h) = (a.width() as usize, a.height() as usize);
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let (mut total, mut windows) = (0.0, 0usize);
    let win = 8.min(w).min(h);
    for top in (0..=h - win).step_by(4) {
        for left in (0..=w - win).step_by(4) {
            let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for r in top..top + win {
                for c in left..left + win {
                    let (p, q) = (x[r * w + c], y[r * w + c]);
                    sx += p;
                    sy += q;
                    sxx += p * p;
                    syy += q * q;
                    sxy += p * q;
                }
            }
            let n = (win * win) as f64;
            let (mx, my) = (sx / n, sy / n);
            let (vx, vy, cov) = (sxx / n - mx * mx, syy / n - my * my, sxy / n - mx * my);
            total += ((2.0 * mx * my + c1) * (2.0 * cov + c2))
                / ((mx * mx + my * my + c1) * (vx + vy + c2));
            windows += 1;
        }
    }
    total / windows.max(1) as f64
}

/// The careful reference: Lanczos3 in f32 (`image::imageops`) from the oriented sRGB image.
pub(crate) fn reference_resize(image: &DynamicImage, width: u32, height: u32) -> image::RgbImage {
    let float = DynamicImage::ImageRgb32F(image.to_rgb32f());
    float
        .resize_exact(width, height, image::imageops::FilterType::Lanczos3)
        .to_rgb8()
}

/// Lowest acceptable mean SSIM per photo and overall. Measured on this corpus (gallery
/// variants md/lg/xl, WebP q80, fast_image_resize Lanczos3 vs the f32 `imageops` Lanczos3
/// reference): per photo 0.949 (kodim04, whose variants are unscaled, so WebP loss only) to
/// 0.985, overall 0.970 over 39 variants. The thresholds keep ~0.015 per photo and ~0.008
/// overall for encoder/decoder drift; a lower WebP quality or a coarser filter lowers them.
const MIN_PHOTO_SSIM: f64 = 0.935;
const MIN_MEAN_SSIM: f64 = 0.962;

#[test]
fn variants_match_a_careful_lanczos_reference() {
    let photos: Vec<ManifestRow> = manifest()
        .into_iter()
        .filter(|row| row.path().starts_with("photos/"))
        .collect();
    assert!(!photos.is_empty(), "no photos/ rows in the manifest");
    let mut skipped = Skipped::new("variants_match_a_careful_lanczos_reference");
    let (mut failures, mut all) = (Vec::new(), Vec::new());
    for row in &photos {
        if skipped.without_libheif(row) {
            continue;
        }
        let name = row.path().trim_start_matches("photos/");
        let bytes = row.bytes();
        let result = pipeline::probe(&bytes, &LIMITS).and_then(|probe| {
            let decoded = decode::first_frame(&bytes, probe.format, &LIMITS, &Needs::full_size())?;
            let oriented = orient::apply(decoded.image, decoded.orientation);
            let processed = pipeline::process(&bytes, &gallery(), &LIMITS)?;
            Ok((oriented, processed))
        });
        let (oriented, processed) = match result {
            Ok(pair) => pair,
            Err(err) => {
                failures.push(format!("{name}: {err}"));
                continue;
            }
        };
        let mut scores = Vec::new();
        for variant in &processed.variants {
            let Ok(decoded) =
                image::load_from_memory_with_format(&variant.webp, image::ImageFormat::WebP)
            else {
                failures.push(format!("{name}/{}: does not decode", variant.name));
                continue;
            };
            let reference = reference_resize(&oriented, variant.width, variant.height);
            let score = ssim(&reference, &decoded.to_rgb8());
            println!(
                "{name:45} {:3} {:5}x{:<5} SSIM {score:.4}",
                variant.name, variant.width, variant.height
            );
            scores.push(score);
        }
        let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
        println!("{name:45} mean SSIM {mean:.4}");
        if mean < MIN_PHOTO_SSIM {
            failures.push(format!("{name}: mean SSIM {mean:.4} < {MIN_PHOTO_SSIM}"));
        }
        all.extend(scores);
    }
    let overall = all.iter().sum::<f64>() / all.len().max(1) as f64;
    println!("overall mean SSIM {overall:.4} over {} variants", all.len());
    if overall < MIN_MEAN_SSIM {
        failures.push(format!("overall mean SSIM {overall:.4} < {MIN_MEAN_SSIM}"));
    }
    skipped.report();
    assert!(
        failures.is_empty(),
        "quality failures:\n{}",
        failures.join("\n")
    );
}
