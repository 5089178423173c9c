//! Decodes an image once: the first frame, its EXIF orientation, its colours in sRGB.
//!
//! Animated GIF/WebP/APNG give their first frame only (the decoders stop there, so a
//! 40,000-frame GIF costs one frame); multi-page TIFF its first page; HEIF/AVIF (through
//! `format::heif`, libheif) their primary image, already upright. Structure is checked first
//! by the format's walker (`super::format`): a JPEG without EOI or a PNG without IEND is
//! `Truncated`, because decoders fill missing data with grey instead of failing. What `image`
//! cannot decode (fax and YCbCr TIFF pages, raw CMYK ink) the format modules decode.
//! Colour goes to sRGB (`super::colour`) in the decoded bit depth; CMYK with an ICC profile is
//! decoded to raw ink values for that. Output is normalised to 8-bit RGB or RGBA.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageReader};

use super::format::{Container, heif, jpeg, tiff};
use super::shrink::{self, Needs};
use super::{ImageFormat, Limits, PipelineError, colour};

/// A decoded first frame and what is needed to display it right.
#[derive(Debug)]
pub struct Decoded {
    /// 8-bit sRGB, or 8-bit sRGBA when some pixel is not opaque; not yet oriented; smaller
    /// than `size` when shrunk on load (`super::shrink`).
    pub image: DynamicImage,
    /// The stored width and height, before orientation.
    pub size: (u32, u32),
    /// The EXIF orientation; `NoTransforms` when absent, 0 or invalid.
    pub orientation: Orientation,
    /// The embedded ICC profile (already applied to `image`); `None` for HEIF/AVIF.
    pub icc_profile: Option<Vec<u8>>,
}

/// Checks the structure, then decodes the first frame, page or primary image, as small as
/// `needs` allows.
///
/// # Errors
/// `Truncated` when the data ends early, `Corrupt`/`Decode` when it is malformed,
/// `TooManyPixels` if the decoder finds a size the header check did not.
pub fn first_frame(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
    needs: &Needs,
) -> Result<Decoded, PipelineError> {
    check_complete(bytes, format)?;
    if format == ImageFormat::Jpeg
        && let Some(decoded) = shrink::jpeg(bytes, limits, needs)
    {
        return Ok(decoded);
    }
    full_size(bytes, format, limits)
}

impl Decoded {
    /// A picture decoded at its stored size.
    fn full(image: DynamicImage, orientation: Orientation, icc_profile: Option<Vec<u8>>) -> Self {
        Self {
            size: (image.width(), image.height()),
            image,
            orientation,
            icc_profile,
        }
    }
}

/// Decodes the first frame at its stored size.
fn full_size(bytes: &[u8], format: ImageFormat, limits: &Limits) -> Result<Decoded, PipelineError> {
    // image's TIFF decoder cannot read CCITT Group 3 (fax) pages; the fax crate can.
    let image_format = match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Webp => image::ImageFormat::WebP,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Tiff => image::ImageFormat::Tiff,
        ImageFormat::Avif | ImageFormat::Heic => {
            return Ok(Decoded::full(
                normalise(heif::decode(bytes, format, limits)?),
                Orientation::NoTransforms,
                None,
            ));
        }
    };
    let decode_error = |source| PipelineError::Decode { format, source };

    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    reader.limits(decoder_limits(limits));
    if format == ImageFormat::Tiff
        && let Some(image) = tiff::decode_fax3(bytes, limits)
    {
        return Ok(Decoded::full(
            normalise(image),
            tiff::tags(bytes).orientation,
            None,
        ));
    }
    let mut decoder = match reader.into_decoder() {
        Ok(decoder) => decoder,
        // image cannot map YCbCr (JPEG-in-TIFF) pages; the tiff crate decodes them to RGB.
        Err(err) if format == ImageFormat::Tiff => {
            let image = tiff::decode_ycbcr(bytes, limits).ok_or_else(|| decode_error(err))?;
            let tags = tiff::tags(bytes);
            return Ok(Decoded::full(
                normalise(colour::to_srgb(image, tags.icc.as_deref())),
                tags.orientation,
                tags.icc,
            ));
        }
        Err(err) => return Err(decode_error(err)),
    };
    let (width, height) = decoder.dimensions();
    limits.check(width, height)?;
    if width == 0 || height == 0 {
        return Err(PipelineError::Corrupt {
            format,
            reason: format!("the image is {width}×{height}"),
        });
    }
    // Metadata is optional: a broken EXIF or ICC block must not fail the image.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    // image's TIFF decoder does not return the ICC tag; read it from IFD0.
    let icc_profile = match decoder.icc_profile().ok().flatten() {
        None if format == ImageFormat::Tiff => tiff::tags(bytes).icc,
        icc => icc,
    };
    // image reports CMYK JPEGs as RGB (zune-jpeg converts them); their profile says CMYK.
    let cmyk = matches!(
        decoder.original_color_type(),
        ExtendedColorType::Cmyk8 | ExtendedColorType::Cmyk16
    ) || icc_profile
        .as_deref()
        .is_some_and(|icc| icc.get(16..20) == Some(b"CMYK"));
    let image = match (cmyk, icc_profile.as_deref()) {
        (true, Some(icc)) => match raw_cmyk(bytes, format) {
            Some((width, height, ink)) => {
                DynamicImage::ImageRgb8(colour::cmyk_to_srgb(&ink, width, height, Some(icc)))
            }
            None => DynamicImage::from_decoder(decoder).map_err(decode_error)?,
        },
        // CMYK without a profile: the decoders' naive conversion (zune-jpeg treats JPEG CMYK as
        // Adobe-inverted, as libjpeg-based tools do), which matches Pillow on the corpus.
        (true, None) => DynamicImage::from_decoder(decoder).map_err(decode_error)?,
        (false, icc) => colour::to_srgb(
            DynamicImage::from_decoder(decoder).map_err(decode_error)?,
            icc,
        ),
    };
    Ok(Decoded::full(normalise(image), orientation, icc_profile))
}

/// Decodes CMYK JPEG/TIFF to raw 8-bit ink values (0 = no ink), for an ICC conversion.
///
/// Adobe JPEGs store inverted CMYK (255 = no ink) and are flipped back here. `None` when the
/// raw decode fails or is not 8-bit CMYK; the caller then falls back to the naive conversion.
fn raw_cmyk(bytes: &[u8], format: ImageFormat) -> Option<(u32, u32, Vec<u8>)> {
    match format {
        ImageFormat::Jpeg => jpeg::cmyk_ink(bytes),
        ImageFormat::Tiff => tiff::cmyk_ink(bytes),
        _ => None,
    }
}

/// `image` limits matching ours, so the decoder also refuses what the header check missed.
fn decoder_limits(limits: &Limits) -> image::Limits {
    let mut out = image::Limits::default();
    out.max_image_width = Some(limits.max_side);
    out.max_image_height = Some(limits.max_side);
    // The work budget the header was checked against, plus decoder working space: a backstop
    // for what a header did not tell.
    out.max_alloc = Some(limits.max_decoded_bytes.saturating_add(64 << 20));
    out
}

/// Refuses files whose structure ends early, before spending time decoding them.
///
/// # Errors
/// `Truncated` or `Corrupt`.
pub fn check_complete(bytes: &[u8], format: ImageFormat) -> Result<(), PipelineError> {
    Container::of(format).check_complete(bytes)
}

/// Converts to 8-bit RGB, or RGBA when the alpha channel is actually used.
pub fn normalise(image: DynamicImage) -> DynamicImage {
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
    use crate::pipeline::format::jpeg::tests::skeleton as jpeg_skeleton;

    const LIMITS: Limits = Limits {
        max_pixels: 100_000_000,
        max_side: 20_000,
        max_decoded_bytes: 512 << 20,
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
            first_frame(
                &png[..png.len() - 20],
                ImageFormat::Png,
                &LIMITS,
                &Needs::full_size()
            ),
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
        let decoded = first_frame(
            &encode_png(&opaque),
            ImageFormat::Png,
            &LIMITS,
            &Needs::full_size(),
        );
        assert!(matches!(
            decoded.map(|d| d.image),
            Ok(DynamicImage::ImageRgb8(_))
        ));

        let mut translucent = image::RgbaImage::from_pixel(4, 3, image::Rgba([9, 9, 9, 255]));
        translucent.put_pixel(0, 0, image::Rgba([0, 0, 0, 10]));
        let png = encode_png(&DynamicImage::ImageRgba8(translucent));
        let decoded = first_frame(&png, ImageFormat::Png, &LIMITS, &Needs::full_size());
        assert!(matches!(
            decoded.map(|d| d.image),
            Ok(DynamicImage::ImageRgba8(_))
        ));

        let grey = DynamicImage::ImageLuma16(image::ImageBuffer::new(5, 5));
        let decoded = first_frame(
            &encode_png(&grey),
            ImageFormat::Png,
            &LIMITS,
            &Needs::full_size(),
        );
        assert!(matches!(
            decoded.map(|d| d.image),
            Ok(DynamicImage::ImageRgb8(_))
        ));
    }
}
