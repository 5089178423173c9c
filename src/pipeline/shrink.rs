//! Shrink-on-load: decoding a JPEG at 1/2, 1/4 or 1/8 of its size when every use of the pixels
//! is that much smaller anyway.
//!
//! A JPEG stores 8×8 blocks of frequencies; an inverse transform of only the lowest 4×4, 2×2
//! or 1×1 of them gives the block at that scale, filtered as a good resampler would. A 12 MP
//! photo made into a 256 px avatar is then decoded to 1008×756 instead of 4032×3024: less
//! transform and colour work, a smaller picture to turn upright and resize, a sixteenth of
//! the memory. zune-jpeg (our full-size decoder) cannot do this; jpeg-decoder, image-rs's
//! earlier JPEG decoder, can, and is used only then.
//!
//! The reduced picture keeps at least [`MIN_RESIDUAL`]× the pixels of the largest use, so
//! Lanczos3 still makes the final size (measured in BENCHMARKS.md). Other formats have no
//! reduced decode in our decoders (PNG, WebP, GIF, TIFF, HEIF/AVIF through libheif) and are
//! decoded at full size. A JPEG the reduced decoder refuses or crashes on is decoded at full
//! size: this path may make a file faster, never refuse it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};

use super::decode::{Decoded, normalise};
use super::resize::plan;
use super::{Fit, Limits, OutputSpec, VariantSpec, colour, orient};

/// The reduced picture is at least this many times larger (per side) than the largest
/// variant made from it.
pub const MIN_RESIDUAL: f64 = 2.0;

/// Longest side of the blurhash's thumbnail, which every prepared image also feeds.
const BLURHASH_SIDE: u32 = 64;

/// What the prepared pixels will be made into, so the decoder knows how small it may go.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// `None`: the full size is needed (a reference, a caller that keeps the pixels).
    uses: Option<Vec<VariantSpec>>,
}

impl Needs {
    /// Every pixel: no shrinking on load.
    pub fn full_size() -> Self {
        Self::default()
    }

    /// The variants of `spec` and the blurhash.
    pub fn outputs(spec: &OutputSpec) -> Self {
        Self {
            uses: Some(spec.variants.clone()),
        }
    }

    /// Also a thumbnail of at most `side` pixels a side (moderation's input).
    #[must_use]
    pub fn with_thumbnail(mut self, side: u32) -> Self {
        if let Some(uses) = self.uses.as_mut() {
            uses.push(VariantSpec {
                name: String::new(),
                width: side,
                height: Some(side),
                fit: Fit::Inside,
            });
        }
        self
    }

    /// The reduction (1, 2, 4 or 8) for an image displayed at `width`×`height`: the largest
    /// that leaves every use at least [`MIN_RESIDUAL`]× to scale down.
    pub fn factor(&self, width: u32, height: u32) -> u32 {
        let Some(uses) = &self.uses else {
            return 1;
        };
        let blurhash = f64::from(width.max(height)) / f64::from(BLURHASH_SIDE);
        let smallest = uses
            .iter()
            .map(|spec| {
                let plan = plan(width, height, spec);
                (plan.crop.2 / f64::from(plan.width)).min(plan.crop.3 / f64::from(plan.height))
            })
            .fold(blurhash, f64::min);

        [8, 4, 2]
            .into_iter()
            .find(|&factor| smallest >= f64::from(factor) * MIN_RESIDUAL)
            .unwrap_or(1)
    }
}

/// Decodes a JPEG reduced as far as `needs` allows; `None` when it cannot be reduced (the
/// uses need the full size, CMYK or 12-bit data) or the reduced decoder fails, which the
/// caller answers with a full-size decode.
pub fn jpeg(bytes: &[u8], limits: &Limits, needs: &Needs) -> Option<Decoded> {
    needs.uses.as_ref()?;
    catch_unwind(AssertUnwindSafe(|| reduced_jpeg(bytes, limits, needs)))
        .ok()
        .flatten()
}

fn reduced_jpeg(bytes: &[u8], limits: &Limits, needs: &Needs) -> Option<Decoded> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_decoded_bytes).ok()?);
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    let grey = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => true,
        jpeg_decoder::PixelFormat::RGB24 => false,
        // CMYK goes through its ICC conversion, 16-bit through the full decoder.
        _ => return None,
    };
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let (width, height) = (info.width, info.height);
    let displayed = orient::displayed((u32::from(width), u32::from(height)), orientation);
    let factor = needs.factor(displayed.0, displayed.1);
    if factor == 1 {
        return None;
    }
    let factor = factor as u16;
    let (width, height) = decoder
        .scale(width.div_ceil(factor), height.div_ceil(factor))
        .ok()?;
    let pixels = decoder.decode().ok()?;
    let (width, height) = (u32::from(width), u32::from(height));
    let image = if grey {
        DynamicImage::ImageLuma8(GrayImage::from_raw(width, height, pixels)?)
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, pixels)?)
    };
    let icc_profile = decoder.icc_profile();
    Some(Decoded {
        image: normalise(colour::to_srgb(image, icc_profile.as_deref())),
        orientation,
        icc_profile,
        size: (u32::from(info.width), u32::from(info.height)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(variants: &[(u32, Option<u32>, Fit)]) -> OutputSpec {
        OutputSpec {
            variants: variants
                .iter()
                .map(|&(width, height, fit)| VariantSpec {
                    name: format!("{width}"),
                    width,
                    height,
                    fit,
                })
                .collect(),
            quality: 80.0,
            keep_original: false,
        }
    }

    #[test]
    fn the_largest_use_sets_the_factor() {
        let avatar = Needs::outputs(&spec(&[
            (64, Some(64), Fit::Cover),
            (256, Some(256), Fit::Cover),
        ]));
        // 3024 / 256 = 11.8: 4 leaves 2.95×, 8 would leave 1.5×.
        assert_eq!(avatar.factor(4032, 3024), 4);
        assert_eq!(avatar.factor(2048, 2048), 4);
        assert_eq!(avatar.factor(1024, 1024), 2);
        assert_eq!(avatar.factor(1023, 1023), 1);
        assert_eq!(avatar.factor(200, 200), 1);
        let gallery = Needs::outputs(&spec(&[
            (640, None, Fit::Inside),
            (1920, None, Fit::Inside),
        ]));
        assert_eq!(gallery.factor(4032, 3024), 1);
        assert_eq!(gallery.factor(7680, 4320), 2);
    }

    #[test]
    fn a_thumbnail_can_hold_the_factor_back() {
        let avatar = Needs::outputs(&spec(&[(64, Some(64), Fit::Cover)]));
        assert_eq!(avatar.factor(4032, 3024), 8);
        assert_eq!(avatar.clone().with_thumbnail(512).factor(4032, 3024), 2);
    }

    #[test]
    fn full_size_never_shrinks() {
        assert_eq!(Needs::full_size().factor(40_000, 40_000), 1);
        assert_eq!(
            Needs::full_size().with_thumbnail(8).factor(40_000, 40_000),
            1
        );
    }

    #[test]
    fn a_width_bound_counts_the_displayed_width() {
        // 640 wide from a portrait 3024×4032: 4.7×, so 2; from its landscape twin 6.3×, so 2.
        let md = Needs::outputs(&spec(&[(640, None, Fit::Inside)]));
        assert_eq!(md.factor(3024, 4032), 2);
        assert_eq!(md.factor(6000, 3000), 4);
    }
}
