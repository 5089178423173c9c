//! Stripped originals carry only what decoding them needs: crafted files with a payload in each
//! place a format lets bytes ride along (JFIF's thumbnail and tail, JPGn segments, Adobe's tail,
//! an ICC profile's tail in JPEG, PNG, WebP and GIF) come out without it, still decoding, and
//! with a profile that parses when they had one.

use img_parts::{Bytes, ImageICC};
use ximagepipeline::pipeline::{self, ImageFormat, Limits, OutputSpec, VariantSpec};

use crate::common::corpus_bytes;

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_side: 20_000,
    max_decoded_bytes: 512 << 20,
};

const PAYLOAD: &[u8] = b"GPS 51.50072 -0.12462 PAYLOAD";

fn avatar() -> OutputSpec {
    OutputSpec {
        variants: vec![VariantSpec {
            name: "xs".into(),
            width: 64,
            height: Some(64),
            fit: pipeline::Fit::Cover,
        }],
        quality: 80.0,
        keep_original: true,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A real sRGB profile with the payload appended.
fn carrier_profile() -> Vec<u8> {
    let mut profile = moxcms::ColorProfile::new_srgb().encode().unwrap();
    profile.extend_from_slice(PAYLOAD);
    profile
}

/// The stripped original of `file`, checked to decode and to be free of the payload.
fn original_of(file: &[u8], format: ImageFormat) -> Vec<u8> {
    assert!(
        contains(file, PAYLOAD),
        "the crafted file holds the payload"
    );
    let processed = pipeline::process(file, &avatar(), &LIMITS).unwrap();
    let original = processed.original.unwrap();
    assert!(
        !contains(&original, PAYLOAD),
        "{format:?}: the payload survived"
    );
    let kind = match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Gif => image::ImageFormat::Gif,
        _ => image::ImageFormat::WebP,
    };
    image::load_from_memory_with_format(&original, kind).unwrap();
    original
}

fn jpeg_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0xFF, marker];
    out.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
fn a_jpeg_keeps_only_the_fields_decoding_needs() {
    let plain = corpus_bytes("valid/jpeg_progressive_cat.jpg");
    let mut jfif = b"JFIF\0\x01\x02\x00\x00\x48\x00\x48\x02\x01".to_vec();
    jfif.extend_from_slice(&[0x10; 6]); // a 2×1 RGB thumbnail
    jfif.extend_from_slice(PAYLOAD);
    let mut adobe = b"Adobe\x00\x64\x00\x00\x00\x00\x01".to_vec();
    adobe.extend_from_slice(PAYLOAD);
    let mut icc = b"ICC_PROFILE\0\x01\x01".to_vec();
    icc.extend(carrier_profile());
    let mut file = plain[..2].to_vec();
    file.extend(jpeg_segment(0xE0, &jfif));
    file.extend(jpeg_segment(0xF0, PAYLOAD));
    file.extend(jpeg_segment(0xEE, &adobe));
    file.extend(jpeg_segment(0xE2, &icc));
    file.extend(jpeg_segment(0xE7, PAYLOAD));
    file.extend_from_slice(&plain[2..]);

    let original = original_of(&file, ImageFormat::Jpeg);
    let jpeg = img_parts::jpeg::Jpeg::from_bytes(Bytes::from(original)).unwrap();
    let markers: Vec<u8> = jpeg.segments().iter().map(|s| s.marker()).collect();
    assert!(
        !markers.iter().any(|m| (0xF0..=0xFD).contains(m)),
        "{markers:x?}"
    );
    assert!(!markers.contains(&0xE7), "{markers:x?}");
    let jfif = jpeg.segments().iter().find(|s| s.marker() == 0xE0).unwrap();
    assert_eq!(
        jfif.contents().len(),
        14,
        "JFIF's fixed fields, no thumbnail"
    );
    let adobe = jpeg.segments().iter().find(|s| s.marker() == 0xEE).unwrap();
    assert_eq!(adobe.contents().len(), 12, "Adobe's fixed fields");
    let profile = jpeg.icc_profile().expect("the profile is kept");
    moxcms::ColorProfile::new_from_slice(&profile).unwrap();
}

#[test]
fn a_png_profile_is_rewritten_from_its_parse() {
    let mut png =
        img_parts::png::Png::from_bytes(Bytes::from(corpus_bytes("valid/png_rgba_blackbug.png")))
            .unwrap();
    png.set_icc_profile(Some(Bytes::from(carrier_profile())));
    let file = png.encoder().bytes().to_vec();
    // The payload is inside the compressed chunk: look for it inflated.
    let inflated = img_parts::png::Png::from_bytes(Bytes::from(file.clone()))
        .unwrap()
        .icc_profile()
        .unwrap();
    assert!(contains(&inflated, PAYLOAD));
    let processed = pipeline::process(&file, &avatar(), &LIMITS).unwrap();
    let original = processed.original.unwrap();
    let profile = img_parts::png::Png::from_bytes(Bytes::from(original))
        .unwrap()
        .icc_profile()
        .expect("the profile is kept");
    assert!(!contains(&profile, PAYLOAD));
    moxcms::ColorProfile::new_from_slice(&profile).unwrap();
}

#[test]
fn a_webp_profile_is_rewritten_from_its_parse() {
    let mut webp =
        img_parts::webp::WebP::from_bytes(Bytes::from(corpus_bytes("valid/webp_lossless.webp")))
            .unwrap();
    webp.set_icc_profile(Some(Bytes::from(carrier_profile())));
    let file = webp.encoder().bytes().to_vec();
    let original = original_of(&file, ImageFormat::Webp);
    let profile = img_parts::webp::WebP::from_bytes(Bytes::from(original))
        .unwrap()
        .icc_profile()
        .expect("the profile is kept");
    moxcms::ColorProfile::new_from_slice(&profile).unwrap();
}

#[test]
fn a_gif_profile_is_rewritten_from_its_parse() {
    let plain = corpus_bytes("valid/gif_transparent.gif");
    // Header and logical screen (13 bytes) plus the global colour table, if any.
    let table = if plain[10] & 0x80 != 0 {
        3 << ((plain[10] & 7) + 1)
    } else {
        0
    };
    let head = 13 + table;
    let mut file = plain[..head].to_vec();
    file.extend_from_slice(b"\x21\xFF\x0BICCRGBG1012");
    for piece in carrier_profile().chunks(255) {
        file.push(piece.len() as u8);
        file.extend_from_slice(piece);
    }
    file.push(0);
    file.extend_from_slice(&plain[head..]);
    let original = original_of(&file, ImageFormat::Gif);
    assert!(contains(&original, b"ICCRGBG1012"), "the profile is kept");
}
