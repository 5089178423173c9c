//! Lossy WebP encoding of the resized variants with libwebp (`super::libwebp`), in parallel.
//!
//! Alpha is kept when the variant has an alpha channel (`decode` already dropped alpha that is
//! fully opaque). The output carries no metadata: libwebp writes only the bitstream.

use image::DynamicImage;
use rayon::prelude::*;

use super::libwebp::{self, EncodeError, Pixels};
use super::resize::Resized;
use super::stop::Stop;
use super::{EncodedVariant, PipelineError};

/// Encodes every variant at `quality` (0–100), in parallel, keeping their order.
///
/// # Errors
/// `Encode` when libwebp refuses a picture, `Stopped` when `stop` was raised before or during
/// a variant.
pub fn webp_all(
    variants: &[Resized],
    quality: f32,
    stop: &Stop,
) -> Result<Vec<EncodedVariant>, PipelineError> {
    variants
        .par_iter()
        .map(|variant| {
            stop.check()?;
            Ok(EncodedVariant {
                name: variant.name.clone(),
                width: variant.image.width(),
                height: variant.image.height(),
                webp: webp(&variant.image, quality, stop).map_err(|err| match err {
                    EncodeError::Stopped => PipelineError::Stopped,
                    err => PipelineError::Encode {
                        variant: variant.name.clone(),
                        reason: err.to_string(),
                    },
                })?,
            })
        })
        .collect()
}

/// Variants of at most this many pixels get libwebp's full rate-distortion search.
const FULL_EFFORT_PIXELS: u64 = 1_000_000;

/// libwebp's `method` (effort, 0–6) for a `width`×`height` picture.
///
/// Measured on the corpus photos against libwebp's default 4 (scripts/bench-processing,
/// BENCHMARKS.md): above a megapixel, 2 encodes 1.7× faster, 3–4 % larger, with DSSIM within 2 %;
/// below it, 2 loses more quality and 4 costs little, so small variants keep 4.
fn method(width: u32, height: u32) -> i32 {
    if u64::from(width) * u64::from(height) <= FULL_EFFORT_PIXELS {
        4
    } else {
        2
    }
}

/// Encodes one 8-bit RGB or RGBA image as lossy WebP.
///
/// # Errors
/// libwebp's refusal, or `Stopped` once `stop` is raised.
pub fn webp(image: &DynamicImage, quality: f32, stop: &Stop) -> Result<Vec<u8>, EncodeError> {
    let (width, height) = (image.width(), image.height());
    let method = method(width, height);
    let converted;
    let pixels = match image {
        DynamicImage::ImageRgb8(rgb) => Pixels::Rgb(rgb.as_raw()),
        DynamicImage::ImageRgba8(rgba) => Pixels::Rgba(rgba.as_raw()),
        other if other.color().has_alpha() => {
            converted = other.to_rgba8().into_raw();
            Pixels::Rgba(&converted)
        }
        other => {
            converted = other.to_rgb8().into_raw();
            Pixels::Rgb(&converted)
        }
    };
    libwebp::encode(pixels, width, height, quality, method, stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Option<DynamicImage> {
        image::load_from_memory_with_format(bytes, image::ImageFormat::WebP).ok()
    }

    #[test]
    fn large_pictures_get_the_faster_method() {
        assert_eq!(method(256, 256), 4);
        assert_eq!(method(1000, 1000), 4);
        assert_eq!(method(1280, 854), 2);
        assert_eq!(method(2560, 1920), 2);
    }

    #[test]
    fn encodes_rgb_and_rgba() {
        let rgb = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            33,
            17,
            image::Rgb([200, 10, 10]),
        ));
        let mut rgba = image::RgbaImage::from_pixel(20, 10, image::Rgba([0, 0, 255, 255]));
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        let variants = vec![
            Resized {
                name: "a".into(),
                image: rgb,
            },
            Resized {
                name: "b".into(),
                image: DynamicImage::ImageRgba8(rgba),
            },
        ];
        let out = webp_all(&variants, 80.0, &Stop::default()).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].name, "a");
        let a = decode(&out[0].webp);
        assert_eq!(a.as_ref().map(|i| (i.width(), i.height())), Some((33, 17)));
        assert_eq!(a.map(|i| i.color().has_alpha()), Some(false));
        let b = decode(&out[1].webp);
        assert_eq!(b.map(|i| i.color().has_alpha()), Some(true));
    }
}
