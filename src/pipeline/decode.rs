//! Decodes an image once: the first frame, its EXIF orientation and its ICC profile.
//!
//! Animated GIF/WebP/APNG give their first frame only (the decoders stop there, so a
//! 40,000-frame GIF costs one frame). Structure is checked first with `super::container`:
//! a JPEG without EOI or a PNG without IEND is `Truncated`, because decoders fill missing
//! data with grey instead of failing. Output is normalised to 8-bit RGB or RGBA.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};

use super::container::{self, End};
use super::{ImageFormat, Limits, PipelineError};

/// A decoded first frame and what is needed to display it right.
#[derive(Debug)]
pub struct Decoded {
    /// 8-bit RGB, or 8-bit RGBA when some pixel is not opaque; not yet oriented.
    pub image: DynamicImage,
    /// The EXIF orientation; `NoTransforms` when absent, 0 or invalid.
    pub orientation: Orientation,
    /// The embedded ICC profile, kept for colour conversion.
    pub icc_profile: Option<Vec<u8>>,
}

/// Checks the structure, then decodes the first frame of a JPEG, PNG, WebP or GIF.
///
/// # Errors
/// `Truncated` when the data ends early, `Corrupt`/`Decode` when it is malformed,
/// `UnsupportedFormat` for formats this build cannot decode, `TooManyPixels` if the decoder
/// finds a size the header check did not.
pub fn first_frame(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<Decoded, PipelineError> {
    check_complete(bytes, format)?;
    let image_format = match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Webp => image::ImageFormat::WebP,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Avif | ImageFormat::Heic | ImageFormat::Tiff => {
            return Err(PipelineError::UnsupportedFormat {
                mime: format.mime(),
            });
        }
    };
    let decode_error = |source| PipelineError::Decode { format, source };

    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    reader.limits(decoder_limits(limits));
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    super::limits::check(width, height, limits)?;
    if width == 0 || height == 0 {
        return Err(PipelineError::Corrupt {
            format,
            reason: format!("the image is {width}×{height}"),
        });
    }
    // Metadata is optional: a broken EXIF or ICC block must not fail the image.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc_profile = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    Ok(Decoded {
        image: normalise(image),
        orientation,
        icc_profile,
    })
}

/// `image` limits matching ours, so the decoder also refuses what the header check missed.
fn decoder_limits(limits: &Limits) -> image::Limits {
    let mut out = image::Limits::default();
    out.max_image_width = Some(limits.max_side);
    out.max_image_height = Some(limits.max_side);
    // Room for a 16-bit RGBA buffer of the largest allowed image, plus decoder working space.
    out.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    out
}

/// Refuses files whose structure ends early, before spending time decoding them.
///
/// # Errors
/// `Truncated` or `Corrupt`.
pub fn check_complete(bytes: &[u8], format: ImageFormat) -> Result<(), PipelineError> {
    let corrupt = |reason: &str| PipelineError::Corrupt {
        format,
        reason: reason.to_owned(),
    };
    let truncated = PipelineError::Truncated { format };
    match format {
        ImageFormat::Jpeg => {
            if container::jpeg(bytes, false).map_err(corrupt)?.end == End::Missing {
                return Err(truncated);
            }
        }
        ImageFormat::Png => {
            let layout = container::png(bytes, false).map_err(corrupt)?;
            if layout.end == End::Missing {
                return Err(truncated);
            }
            if !layout.chunks.iter().any(|chunk| &chunk.kind == b"IDAT") {
                return Err(corrupt("no image data (IDAT chunk)"));
            }
        }
        ImageFormat::Gif => {
            let layout = container::gif(bytes, false).map_err(corrupt)?;
            if layout.first_frame.is_none() && layout.end != End::Missing {
                return Err(corrupt("no image in the file"));
            }
            if !layout.first_frame_complete {
                return Err(truncated);
            }
        }
        ImageFormat::Webp => {
            if container::webp(bytes).map_err(corrupt)?.riff_end > bytes.len() {
                return Err(truncated);
            }
        }
        ImageFormat::Avif | ImageFormat::Heic | ImageFormat::Tiff => {}
    }
    Ok(())
}

/// Converts to 8-bit RGB, or RGBA when the alpha channel is actually used.
fn normalise(image: DynamicImage) -> DynamicImage {
    if !image.color().has_alpha() {
        return match image {
            DynamicImage::ImageRgb8(_) => image,
            other => DynamicImage::ImageRgb8(other.into_rgb8()),
        };
    }
    let rgba = match image {
        DynamicImage::ImageRgba8(rgba) => rgba,
        other => other.into_rgba8(),
    };
    if rgba.pixels().all(|pixel| pixel.0[3] == u8::MAX) {
        DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).into_rgb8())
    } else {
        DynamicImage::ImageRgba8(rgba)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::container::tests::jpeg_skeleton;

    const LIMITS: Limits = Limits {
        max_pixels: 100_000_000,
        max_side: 20_000,
    };

    fn encode_png(image: &DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        assert!(image.write_to(&mut out, image::ImageFormat::Png).is_ok());
        out.into_inner()
    }

    #[test]
    fn truncated_files_are_refused() {
        let jpeg = jpeg_skeleton(8, 8, &[1, 2, 3]);
        assert!(matches!(
            check_complete(&jpeg[..jpeg.len() - 3], ImageFormat::Jpeg),
            Err(PipelineError::Truncated { .. })
        ));
        let png = encode_png(&DynamicImage::new_rgb8(16, 16));
        assert!(check_complete(&png, ImageFormat::Png).is_ok());
        assert!(matches!(
            first_frame(&png[..png.len() - 20], ImageFormat::Png, &LIMITS),
            Err(PipelineError::Truncated { .. })
        ));
    }

    #[test]
    fn normalises_to_8_bit_and_drops_unused_alpha() {
        let opaque = DynamicImage::ImageRgba16(image::ImageBuffer::from_pixel(
            4,
            3,
            image::Rgba([1000u16, 2000, 3000, u16::MAX]),
        ));
        let decoded = first_frame(&encode_png(&opaque), ImageFormat::Png, &LIMITS);
        assert!(matches!(
            decoded.map(|d| d.image),
            Ok(DynamicImage::ImageRgb8(_))
        ));

        let mut translucent = image::RgbaImage::from_pixel(4, 3, image::Rgba([9, 9, 9, 255]));
        translucent.put_pixel(0, 0, image::Rgba([0, 0, 0, 10]));
        let png = encode_png(&DynamicImage::ImageRgba8(translucent));
        let decoded = first_frame(&png, ImageFormat::Png, &LIMITS);
        assert!(matches!(
            decoded.map(|d| d.image),
            Ok(DynamicImage::ImageRgba8(_))
        ));

        let grey = DynamicImage::ImageLuma16(image::ImageBuffer::new(5, 5));
        let decoded = first_frame(&encode_png(&grey), ImageFormat::Png, &LIMITS);
        assert!(matches!(
            decoded.map(|d| d.image),
            Ok(DynamicImage::ImageRgb8(_))
        ));
    }
}
