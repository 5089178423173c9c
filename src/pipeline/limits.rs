//! Header dimensions and the pixel limits, checked before any pixel is decoded.
//!
//! Sizes come from the container walkers (`super::container`), which read only headers, so a
//! 4-gigapixel bomb of a few bytes is refused in microseconds, and a prefix of the file is
//! enough. HEIF/AVIF sizes are the primary item's `ispe` (from `super::isobmff`), TIFF's the
//! first IFD's (from `super::tiff`).

use super::{ImageFormat, Limits, PipelineError, container, isobmff, tiff};

/// Reads the stored width and height from the header and checks them against `limits`.
///
/// For GIF both the logical screen and the first frame count (the decoder allocates the screen).
///
/// # Errors
/// `Corrupt` when the header is malformed, `Truncated` when the bytes end before the size,
/// `TooManyPixels` when over a limit.
pub fn check_header(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<(u32, u32), PipelineError> {
    let corrupt = |reason: &str| PipelineError::Corrupt {
        format,
        reason: reason.to_owned(),
    };
    let (width, height) = match format {
        ImageFormat::Jpeg => {
            let layout = container::jpeg(bytes, true).map_err(corrupt)?;
            if let Some(feature) = layout.frame_marker.and_then(unsupported_jpeg_coding) {
                return Err(PipelineError::UnsupportedFeature { format, feature });
            }
            layout.size.ok_or(PipelineError::Truncated { format })?
        }
        ImageFormat::Png => container::png(bytes, true).map_err(corrupt)?.size,
        ImageFormat::Webp => container::webp(bytes).map_err(corrupt)?.size,
        ImageFormat::Gif => {
            let layout = container::gif(bytes, true).map_err(corrupt)?;
            if let Some((left, top, width, height)) = layout.first_frame {
                check(
                    left.saturating_add(width),
                    top.saturating_add(height),
                    limits,
                )?;
            }
            layout.screen
        }
        ImageFormat::Avif | ImageFormat::Heic => match isobmff::layout(bytes) {
            Ok(layout) => {
                // The coded size (ispe) is what a decoder allocates; report the cropped one.
                let (width, height) = layout
                    .size
                    .ok_or_else(|| corrupt("the primary image has no size (ispe) property"))?;
                check(width, height, limits)?;
                layout.image_size().unwrap_or((width, height))
            }
            Err(reason) if reason.starts_with("file ends") => {
                return Err(PipelineError::Truncated { format });
            }
            Err(reason) => return Err(corrupt(reason)),
        },
        ImageFormat::Tiff => match tiff::header(bytes) {
            Ok(header) => header.size,
            Err(reason) if reason.starts_with("the file ends") => {
                return Err(PipelineError::Truncated { format });
            }
            Err(reason) => return Err(corrupt(reason)),
        },
    };
    if width == 0 || height == 0 {
        return Err(corrupt(&format!(
            "the header declares a {width}×{height} image"
        )));
    }
    check(width, height, limits)?;
    Ok((width, height))
}

/// The JPEG codings the decoder cannot read (it reads baseline, extended and progressive
/// Huffman), named for messages; browsers cannot show them either.
fn unsupported_jpeg_coding(frame_marker: u8) -> Option<&'static str> {
    match frame_marker {
        0xC0..=0xC2 => None,
        0xC3 | 0xC7 | 0xCB | 0xCF => Some("lossless JPEG"),
        0xC9..=0xCA | 0xCD..=0xCE => Some("arithmetic-coded JPEG"),
        _ => Some("hierarchical JPEG"),
    }
}

/// Checks a declared size against the limits.
///
/// # Errors
/// `TooManyPixels` when a side is over `max_side` or the area over `max_pixels`.
pub fn check(width: u32, height: u32, limits: &Limits) -> Result<(), PipelineError> {
    let pixels = u64::from(width) * u64::from(height);
    if width > limits.max_side || height > limits.max_side || pixels > limits.max_pixels {
        return Err(PipelineError::TooManyPixels {
            width,
            height,
            limits: *limits,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::container::tests::jpeg_skeleton;

    const LIMITS: Limits = Limits {
        max_pixels: 100_000_000,
        max_side: 20_000,
    };

    #[test]
    fn limit_arithmetic() {
        for (w, h, ok) in [
            (10_000, 10_000, true),
            (20_000, 5_000, true),
            (20_001, 10, false),
            (10, 20_001, false),
            (10_001, 10_000, false),
            (16_383, 16_383, false),
        ] {
            assert_eq!(check(w, h, &LIMITS).is_ok(), ok, "{w}x{h}");
        }
    }

    #[test]
    fn headers_give_sizes() {
        let jpeg = jpeg_skeleton(640, 480, &[1, 2]);
        assert_eq!(
            check_header(&jpeg, ImageFormat::Jpeg, &LIMITS).ok(),
            Some((640, 480))
        );
        let big = jpeg_skeleton(64_250, 64_250, &[]);
        let err = check_header(&big, ImageFormat::Jpeg, &LIMITS)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("image is 64250×64250, over the 20000-pixel side limit")
        );
        // A 65535×65535 GIF screen with a 1×1 frame is refused for its screen.
        let gif =
            b"GIF89a\xFF\xFF\xFF\xFF\x00\x00\x00\x2C\0\0\0\0\x01\0\x01\0\0\x02\x02\x44\x01\0\x3B";
        assert!(matches!(
            check_header(gif, ImageFormat::Gif, &LIMITS),
            Err(PipelineError::TooManyPixels { width: 65535, .. })
        ));
        // A 38-byte 16383×16383 lossless WebP header.
        let webp = b"RIFF\x1e\0\0\0WEBPVP8L\x11\0\0\0\x2f\xfe\xbf\xff\x0f";
        assert!(matches!(
            check_header(webp, ImageFormat::Webp, &LIMITS),
            Err(PipelineError::TooManyPixels {
                width: 16383,
                height: 16383,
                ..
            })
        ));
        let empty_png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\0\0\0\0\x01\x08\x02\0\0\0";
        assert!(matches!(
            check_header(empty_png, ImageFormat::Png, &LIMITS),
            Err(PipelineError::Corrupt { .. })
        ));
    }
}
