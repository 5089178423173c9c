//! Header dimensions, the pixel limits and the work budget, checked before any pixel is decoded.
//!
//! Sizes come from the format's header walker (`super::format`), which reads only headers, so
//! a 4-gigapixel bomb of a few bytes is refused in microseconds, and a prefix of the file is
//! enough. Some formats report a second size the decoder allocates (a GIF's first frame, a
//! HEIF's coded size before its crop); it must fit the limits too.

use super::format::Container;
use super::{ImageFormat, Limits, PipelineError};

/// Reads the stored width and height from the header and checks them against `limits`.
///
/// For GIF both the logical screen and the first frame count (the decoder allocates the screen).
///
/// # Errors
/// `Corrupt` when the header is malformed, `Truncated` when the bytes end before the size,
/// `UnsupportedFeature` for codings no decoder here reads, `TooManyPixels` when over a limit,
/// `OverBudget` when decoding would produce more than `max_decoded_bytes` or a compressed
/// chunk inflates past its cap.
pub fn check_header(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<(u32, u32), PipelineError> {
    let header = Container::of(format).header(bytes)?;
    if let Some((width, height)) = header.also_allocated {
        limits.check(width, height)?;
    }
    let (width, height) = header.size;
    if width == 0 || height == 0 {
        return Err(PipelineError::Corrupt {
            format,
            reason: format!("the header declares a {width}×{height} image"),
        });
    }
    limits.check(width, height)?;
    limits.check_work(header.decoded_bytes())?;
    Ok((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::format::jpeg::tests::skeleton as jpeg_skeleton;

    const LIMITS: Limits = Limits {
        max_pixels: 100_000_000,
        max_side: 20_000,
        max_decoded_bytes: 512 << 20,
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
            assert_eq!(LIMITS.check(w, h).is_ok(), ok, "{w}x{h}");
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
