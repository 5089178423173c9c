//! Shrink-on-load: a JPEG decoded at 1/2–1/8 of its size, because every variant is that much
//! smaller, must give what a full-size decode gives: the same displayed size and variant
//! sizes, upright in every EXIF orientation, in sRGB, and variants as close to the careful
//! Lanczos reference (made from the full-size decode) as the full-size path's own.

use image::DynamicImage;
use ximagepipeline::pipeline::shrink::Needs;
use ximagepipeline::pipeline::stop::Stop;
use ximagepipeline::pipeline::{self, Fit, Limits, OutputSpec, VariantSpec, resize};

use crate::common::manifest;
use crate::pipeline::{reference_resize, ssim};

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_side: 20_000,
    max_decoded_bytes: 512 << 20,
};

fn spec(variants: &[(&str, u32, Option<u32>, Fit)]) -> OutputSpec {
    OutputSpec {
        variants: variants
            .iter()
            .map(|&(name, width, height, fit)| VariantSpec {
                name: name.into(),
                width,
                height,
                fit,
            })
            .collect(),
        quality: 80.0,
        keep_original: false,
    }
}

/// The avatar's squares, a width-bound set that only shrinks large photos, and a lone small
/// square that shrinks even the small files (the grey and the progressive ones among them).
fn specs() -> [(&'static str, OutputSpec); 3] {
    [
        ("thumb", spec(&[("xs", 64, Some(64), Fit::Cover)])),
        (
            "avatar",
            spec(&[
                ("xs", 64, Some(64), Fit::Cover),
                ("sm", 256, Some(256), Fit::Cover),
            ]),
        ),
        (
            "content",
            spec(&[
                ("md", 640, None, Fit::Inside),
                ("sm", 256, Some(256), Fit::Cover),
            ]),
        ),
    ]
}

/// How much lower a shrunk variant's SSIM against the reference (the careful Lanczos of the
/// full-size decode, same crop) may be than the full-size path's. Measured on the corpus JPEGs:
/// the full-size path scores 0.993–1.000, the shrunk one at most 0.0104 lower (the 64 px
/// square of a 400×267 grey photo, decoded at 1/2), 0.003–0.006 for the photos; a wrong
/// crop, orientation or colour scores 0.3–0.5.
const MAX_SSIM_DROP: f64 = 0.02;

#[test]
fn shrunk_jpegs_give_the_variants_a_full_decode_gives() {
    let jpegs: Vec<_> = manifest()
        .into_iter()
        .filter(|row| row.format() == "JPEG" && row.expected() == "accept")
        .collect();
    let (mut failures, mut shrunk_count) = (Vec::new(), 0);
    for row in &jpegs {
        let bytes = row.bytes();
        let full = match pipeline::prepare(&bytes, &LIMITS) {
            Ok(full) => full,
            // A coding the pipeline refuses (lossless JPEG) is refused alike when shrinking.
            Err(err) => {
                let needs = Needs::outputs(&specs()[0].1);
                let shrunk = pipeline::prepare_until(&bytes, &LIMITS, &needs, &Stop::default());
                if shrunk.as_ref().err().map(ToString::to_string) != Some(err.to_string()) {
                    failures.push(format!("{}: {err} full, not when shrunk", row.path()));
                }
                continue;
            }
        };
        let reference_image = &full.image;
        for (name, spec) in specs() {
            let needs = Needs::outputs(&spec);
            let shrunk = pipeline::prepare_until(&bytes, &LIMITS, &needs, &Stop::default())
                .expect("the full-size decode succeeded");
            let case = format!("{} ({name})", row.path());
            let size = (full.width, full.height);
            if (shrunk.width, shrunk.height) != size
                || size != (reference_image.width(), reference_image.height())
                || row
                    .display_size()
                    .is_some_and(|displayed| displayed != size)
            {
                failures.push(format!(
                    "{case}: displayed {}×{} shrunk, {}×{} full",
                    shrunk.width, shrunk.height, full.width, full.height
                ));
                continue;
            }
            if shrunk.image.width() < shrunk.width {
                shrunk_count += 1;
            }
            let variants = |image: &DynamicImage| {
                resize::all(image, size, &spec.variants, &Stop::default()).expect("resize")
            };
            let pairs = variants(&shrunk.image)
                .into_iter()
                .zip(variants(reference_image));
            for ((ours, theirs), spec) in pairs.zip(&spec.variants) {
                let (width, height) = (theirs.image.width(), theirs.image.height());
                if (ours.image.width(), ours.image.height()) != (width, height) {
                    failures.push(format!("{case} {}: size differs", ours.name));
                    continue;
                }
                let (left, top, crop_width, crop_height) = resize::plan(size.0, size.1, spec).crop;
                let region = reference_image.crop_imm(
                    left.round() as u32,
                    top.round() as u32,
                    crop_width.round() as u32,
                    crop_height.round() as u32,
                );
                let reference = reference_resize(&region, width, height);
                let shrunk_ssim = ssim(&reference, &ours.image.to_rgb8());
                let full_ssim = ssim(&reference, &theirs.image.to_rgb8());
                println!(
                    "{case:60} {:3} SSIM full {full_ssim:.4} shrunk {shrunk_ssim:.4}",
                    ours.name
                );
                if shrunk_ssim < full_ssim - MAX_SSIM_DROP {
                    failures.push(format!(
                        "{case} {}: SSIM {shrunk_ssim:.4} shrunk, {full_ssim:.4} full",
                        ours.name
                    ));
                }
            }
        }
    }
    // The photos, the orientation set and the larger valid JPEGs shrink for the avatar.
    assert!(
        shrunk_count >= 20,
        "only {shrunk_count} decodes were shrunk"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn cmyk_and_full_size_needs_decode_at_full_size() {
    // CMYK goes through its ICC conversion at full size, though the thumb alone would allow 1/2.
    let thumb = Needs::outputs(&specs()[0].1);
    for (path, needs) in [
        ("valid/jpeg_cmyk_icc.jpg", &thumb),
        ("valid/jpeg_cmyk_no_icc.jpg", &thumb),
        ("photos/hato_6.3mp.jpg", &Needs::full_size()),
    ] {
        let bytes = crate::common::corpus_bytes(path);
        let prepared = pipeline::prepare_until(&bytes, &LIMITS, needs, &Stop::default()).unwrap();
        assert_eq!(prepared.image.width(), prepared.width, "{path}");
    }
    let grey = crate::common::corpus_bytes("valid/jpeg_gray_concert.jpg");
    let prepared = pipeline::prepare_until(&grey, &LIMITS, &thumb, &Stop::default()).unwrap();
    assert_eq!(
        (prepared.image.width(), prepared.width),
        (200, 400),
        "the grey JPEG shrinks"
    );
}

#[test]
fn process_reports_the_full_size_of_a_shrunk_photo() {
    let bytes = crate::common::corpus_bytes("photos/dog_12mp_orientation6_exif_xmp_icc.jpg");
    let processed = pipeline::process(&bytes, &specs()[1].1, &LIMITS).unwrap();
    assert_eq!((processed.width, processed.height), (3024, 4032));
    assert_eq!(processed.aspect_ratio, "3:4");
    let sizes: Vec<_> = processed
        .variants
        .iter()
        .map(|v| (v.width, v.height))
        .collect();
    assert_eq!(sizes, [(64, 64), (256, 256)]);
}
