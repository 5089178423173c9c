//! The stored original: the upload's bytes with metadata removed and pixels untouched.
//!
//! Dropped: EXIF, XMP, IPTC (APP13), comments, text chunks, unknown ancillary data and
//! anything after the end of the image (appended ZIPs, UltraHDR gain maps). Kept: what
//! decoding and colour need (JFIF APP0, Adobe APP14, ICC profiles, PNG palette/transparency/
//! gamma/chromaticity chunks, animation chunks, GIF looping). When the orientation is not 1,
//! a minimal EXIF block holding only the Orientation tag is written back, so the original
//! still displays upright.
//!
//! How is each format's business (`super::format`): JPEG and GIF are rewritten from their
//! walkers (for JPEG this also catches metadata between progressive scans); PNG and WebP go
//! through img-parts; GIF frames are re-coded (same indices, new LZW bytes, so nothing hidden
//! in the coded data survives); TIFF IFDs and HEIF/AVIF metadata items are blanked in place,
//! so every offset stays valid.

use image::metadata::Orientation;

use super::format::Container;
use super::{ImageFormat, PipelineError};

/// Returns `bytes` without metadata; `orientation` is written back when it is not 1.
///
/// # Errors
/// `StripUnsupported` for BigTIFF; `TooManyFrames` for GIFs over `gif::MAX_FRAMES`;
/// `Corrupt`/`Truncated` when the structure cannot be walked.
pub fn metadata(
    bytes: &[u8],
    format: ImageFormat,
    orientation: Orientation,
) -> Result<Vec<u8>, PipelineError> {
    Container::of(format).strip(bytes, orientation.to_exif())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::format::exif;
    use crate::pipeline::format::webp::{VP8X_EXIF, VP8X_XMP};
    use image::DynamicImage;
    use img_parts::riff::{RiffChunk, RiffContent};
    use img_parts::webp::WebP;
    use img_parts::{Bytes, ImageEXIF};
    use std::io::Cursor;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn exif_orientation(bytes: &[u8], format: image::ImageFormat) -> Option<u8> {
        use image::ImageDecoder;
        let reader = image::ImageReader::with_format(Cursor::new(bytes), format);
        let mut decoder = reader.into_decoder().ok()?;
        let exif = decoder.exif_metadata().ok()??;
        Orientation::from_exif_chunk(&exif).map(Orientation::to_exif)
    }

    fn pixels(bytes: &[u8], format: image::ImageFormat) -> Option<Vec<u8>> {
        image::load_from_memory_with_format(bytes, format)
            .ok()
            .map(|i| i.into_rgba8().into_raw())
    }

    /// A real JPEG with EXIF (orientation 6), XMP, a comment and a ZIP appended.
    fn dirty_jpeg() -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 90]));
        let mut clean = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut clean, 90);
        assert!(img.write_with_encoder(encoder).is_ok());
        let mut exif_payload = b"Exif\0\0".to_vec();
        let mut tiff = exif::minimal(6);
        tiff.extend_from_slice(b"GPS secret 51.5N");
        exif_payload.extend(tiff);
        let segment = |marker: u8, payload: &[u8]| {
            let mut s = vec![0xFF, marker];
            s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
            s.extend_from_slice(payload);
            s
        };
        let mut out = clean[..2].to_vec();
        out.extend(segment(0xE1, &exif_payload));
        out.extend(segment(
            0xE1,
            b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta secret/>",
        ));
        out.extend(segment(0xFE, b"<?php system($_GET['c']); ?>"));
        out.extend(segment(0xED, b"Photoshop 3.0\08BIM iptc secret"));
        out.extend_from_slice(&clean[2..]);
        out.extend_from_slice(b"PK\x03\x04 zip payload secret");
        out
    }

    #[test]
    fn jpeg_loses_metadata_keeps_pixels_and_orientation() {
        let input = dirty_jpeg();
        let out = metadata(&input, ImageFormat::Jpeg, Orientation::Rotate90).unwrap();
        for needle in [&b"secret"[..], b"<?php", b"xmpmeta", b"PK\x03\x04"] {
            assert!(
                !contains(&out, needle),
                "{}",
                String::from_utf8_lossy(needle)
            );
        }
        assert!(out.ends_with(&[0xFF, 0xD9]));
        let fmt = image::ImageFormat::Jpeg;
        assert_eq!(pixels(&out, fmt), pixels(&input, fmt));
        assert!(pixels(&out, fmt).is_some());
        assert_eq!(exif_orientation(&input, fmt), Some(6));
        assert_eq!(exif_orientation(&out, fmt), Some(6));

        let upright = metadata(&input, ImageFormat::Jpeg, Orientation::NoTransforms).unwrap();
        assert!(!contains(&upright, b"Exif\0\0"));
        assert_eq!(pixels(&upright, fmt), pixels(&input, fmt));
    }

    #[test]
    fn png_loses_text_and_exif_keeps_pixels() {
        let img = image::RgbaImage::from_fn(9, 7, |x, y| {
            image::Rgba([x as u8 * 20, y as u8 * 30, 7, 200])
        });
        let mut clean = Vec::new();
        assert!(
            img.write_to(&mut Cursor::new(&mut clean), image::ImageFormat::Png)
                .is_ok()
        );
        let chunk = |kind: &[u8; 4], data: &[u8]| {
            let chunk = img_parts::png::PngChunk::new(*kind, Bytes::copy_from_slice(data));
            chunk.encoder().bytes().to_vec()
        };
        let ihdr_end = 8 + 25;
        let mut input = clean[..ihdr_end].to_vec();
        input.extend(chunk(b"tEXt", b"Comment\0secret"));
        input.extend(chunk(b"eXIf", &exif::minimal(3)));
        input.extend_from_slice(&clean[ihdr_end..]);
        input.extend_from_slice(b"trailing secret");

        let out = metadata(&input, ImageFormat::Png, Orientation::Rotate180).unwrap();
        assert!(!contains(&out, b"secret"));
        assert!(!contains(&out, b"tEXt"));
        let fmt = image::ImageFormat::Png;
        assert!(pixels(&out, fmt).is_some());
        assert_eq!(pixels(&out, fmt), pixels(&clean, fmt));
        assert_eq!(exif_orientation(&out, fmt), Some(3));
        let upright = metadata(&input, ImageFormat::Png, Orientation::NoTransforms).unwrap();
        assert!(!contains(&upright, b"eXIf"));
    }

    #[test]
    fn gif_loses_comments_and_trailing_bytes() {
        let mut input = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xFF\xFF\xFF".to_vec();
        input.extend_from_slice(b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\0\0\0");
        input.extend_from_slice(b"\x21\xFF\x0BXMP DataXMP\x06secret\0");
        input.extend_from_slice(b"\x21\xFE\x0C<?php x(); ?\0");
        input.extend_from_slice(b"\x21\xF9\x04\x01\0\0\0\0");
        // One pixel; then junk hidden after the LZW end code in the same sub-block.
        input.extend_from_slice(b"\x2C\0\0\0\0\x01\0\x01\0\0\x02\x0F\x44\x01<?php x(); ?>\0");
        input.extend_from_slice(b"\x3B<?php echo 1; ?> secret");
        let out = metadata(&input, ImageFormat::Gif, Orientation::NoTransforms).unwrap();
        assert!(!contains(&out, b"secret"));
        assert!(!contains(&out, b"<?php"));
        assert!(contains(&out, b"NETSCAPE2.0"));
        assert_eq!(out.last(), Some(&0x3B));
        let fmt = image::ImageFormat::Gif;
        assert!(pixels(&out, fmt).is_some());
        assert_eq!(pixels(&out, fmt), pixels(&input, fmt));
    }

    #[test]
    fn webp_loses_xmp_and_trailing_bytes_keeps_orientation() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(24, 16, |x, y| {
            image::Rgb([x as u8 * 10, y as u8 * 15, 60])
        }));
        let clean = crate::pipeline::encode::webp(&img, 80.0, &Default::default()).unwrap();
        let mut webp = WebP::from_bytes(Bytes::from(clean.clone())).ok();
        if let Some(webp) = webp.as_mut() {
            webp.set_exif(Some(Bytes::from(exif::minimal(8))));
            let xmp = RiffContent::Data(Bytes::from_static(b"<x:xmpmeta secret/>"));
            webp.chunks_mut().push(RiffChunk::new(*b"XMP ", xmp));
        }
        let mut input = webp.map(|w| w.encoder().bytes().to_vec()).unwrap();
        input.extend_from_slice(b"trailing secret");

        let out = metadata(&input, ImageFormat::Webp, Orientation::Rotate270).unwrap();
        assert!(!contains(&out, b"secret"));
        assert!(!contains(&out, b"XMP "));
        let fmt = image::ImageFormat::WebP;
        assert!(pixels(&out, fmt).is_some());
        assert_eq!(pixels(&out, fmt), pixels(&clean, fmt));
        assert_eq!(exif_orientation(&out, fmt), Some(8));
        // VP8X flags: EXIF announced, XMP not.
        let flags = out.get(20).copied().unwrap_or(0);
        assert_eq!(flags & (VP8X_EXIF | VP8X_XMP), VP8X_EXIF);
    }

    #[test]
    fn unsupported_formats_are_an_error_not_a_copy() {
        let bigtiff = b"II\x2B\0\x08\0\0\0\x10\0\0\0\0\0\0\0";
        let result = metadata(bigtiff, ImageFormat::Tiff, Orientation::NoTransforms);
        assert!(matches!(
            result,
            Err(PipelineError::StripUnsupported { .. })
        ));
    }
}
