//! Decodes HEIF/HEIC and AVIF with libheif: the primary image, upright, in 8 or 16 bits.
//!
//! libheif applies `irot`/`imir` (and `clap`) while decoding, so the result is already in
//! display orientation (checked on the corpus `orientation/` files); the EXIF orientation of
//! HEIF files is ignored, as the HEIF specification asks. Image sequences (`avis`) and
//! multi-image files give their primary item only, so no frame walk happens. The colour
//! description (ICC, or nclx for wide-gamut/HDR) is converted to sRGB by `pipeline::colour`.
//! Header facts for the limits come from the `meta` box reader beside this, without libheif.

use image::{DynamicImage, ImageBuffer};
use libheif_rs::{
    ColorProfile, ColorSpace, HeifContext, HeifError, HeifErrorCode, LibHeif, RgbChroma,
    color_profile_types,
};

use crate::pipeline::colour::{self, Cicp};
use crate::pipeline::{ImageFormat, Limits, PipelineError};

/// Decodes the primary image of a HEIF/AVIF file, applying its rotation and mirroring.
///
/// Returns an 8-bit or (for 10/12-bit sources) 16-bit RGB/RGBA image already converted to
/// sRGB, and no orientation to apply.
///
/// # Errors
/// `Truncated` when a box or an item's data runs past the end of the file, `Corrupt` when
/// libheif refuses the structure or the coded data, `TooManyPixels` for images over the limits.
pub fn decode(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<DynamicImage, PipelineError> {
    super::check_complete(bytes).map_err(|e| e.into_pipeline(format))?;
    let heif_error = |err: HeifError| heif_error(format, err);
    // libheif borrows `bytes` without copying; `context` lives only inside this function.
    let context = HeifContext::read_from_bytes(bytes).map_err(heif_error)?;
    let handle = context.primary_image_handle().map_err(heif_error)?;
    let (width, height) = (handle.width(), handle.height());
    limits.check(width, height)?;
    let alpha = handle.has_alpha_channel();
    let deep = handle.luma_bits_per_pixel() > 8;
    let chroma = match (deep, alpha) {
        (false, false) => RgbChroma::Rgb,
        (false, true) => RgbChroma::Rgba,
        (true, false) => RgbChroma::HdrRgbLe,
        (true, true) => RgbChroma::HdrRgbaLe,
    };
    let icc = handle.color_profile_raw().and_then(|profile| {
        matches!(
            profile.profile_type(),
            color_profile_types::PROF | color_profile_types::R_ICC
        )
        .then_some(profile.data)
    });
    let cicp = handle.color_profile_nclx().map(|nclx| Cicp {
        primaries: nclx.color_primaries() as u8,
        transfer: nclx.transfer_characteristics() as u8,
    });

    let image = LibHeif::new()
        .decode(&handle, ColorSpace::Rgb(chroma), None)
        .map_err(heif_error)?;
    let planes = image.planes();
    let plane = planes.interleaved.ok_or_else(|| PipelineError::Corrupt {
        format,
        reason: "libheif returned no interleaved RGB plane".to_owned(),
    })?;
    let channels = if alpha { 4 } else { 3 };
    let (w, h) = (plane.width, plane.height);
    let row_len = w as usize * channels;
    let decoded = if deep {
        let bits = u32::from(plane.bits_per_pixel.clamp(9, 16));
        let mut samples = Vec::with_capacity(row_len * h as usize);
        for row in plane.data.chunks(plane.stride).take(h as usize) {
            let row = row.get(..row_len * 2).ok_or_else(|| short_plane(format))?;
            samples.extend(
                row.chunks_exact(2)
                    .map(|b| widen(u16::from_le_bytes([b[0], b[1]]), bits)),
            );
        }
        if alpha {
            ImageBuffer::from_raw(w, h, samples).map(DynamicImage::ImageRgba16)
        } else {
            ImageBuffer::from_raw(w, h, samples).map(DynamicImage::ImageRgb16)
        }
    } else {
        let mut samples = Vec::with_capacity(row_len * h as usize);
        for row in plane.data.chunks(plane.stride).take(h as usize) {
            samples.extend_from_slice(row.get(..row_len).ok_or_else(|| short_plane(format))?);
        }
        if alpha {
            ImageBuffer::from_raw(w, h, samples).map(DynamicImage::ImageRgba8)
        } else {
            ImageBuffer::from_raw(w, h, samples).map(DynamicImage::ImageRgb8)
        }
    };
    let decoded = decoded.ok_or_else(|| short_plane(format))?;
    Ok(match (icc, cicp) {
        (Some(icc), _) => colour::to_srgb(decoded, Some(&icc)),
        (None, Some(cicp)) => colour::from_cicp(decoded, cicp),
        (None, None) => decoded,
    })
}

/// Scales a `bits`-bit sample to the full 16-bit range (1023 → 65535 for 10 bits).
fn widen(value: u16, bits: u32) -> u16 {
    let max = (1u32 << bits) - 1;
    ((u32::from(value).min(max) * 65_535 + max / 2) / max) as u16
}

fn short_plane(format: ImageFormat) -> PipelineError {
    PipelineError::Corrupt {
        format,
        reason: "libheif returned a plane smaller than the image".to_owned(),
    }
}

/// Turns a libheif error into words: "HEIF file is corrupt: ..." style reasons.
fn heif_error(format: ImageFormat, err: HeifError) -> PipelineError {
    let detail = if err.message.is_empty() {
        format!("{:?}", err.code)
    } else {
        err.message.clone()
    };
    match err.code {
        HeifErrorCode::UnsupportedFeature | HeifErrorCode::UnsupportedFileType => {
            PipelineError::Corrupt {
                format,
                reason: format!("the file uses a feature libheif cannot read ({detail})"),
            }
        }
        _ => PipelineError::Corrupt {
            format,
            reason: detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_fills_the_16_bit_range() {
        assert_eq!(widen(1023, 10), 65535);
        assert_eq!(widen(0, 10), 0);
        assert_eq!(widen(4095, 12), 65535);
        assert_eq!(widen(512, 10), 32800);
    }
}
