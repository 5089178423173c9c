//! Lossy WebP encoding of the resized variants with libwebp (the `webp` crate), in parallel.
//!
//! Alpha is kept when the variant has an alpha channel (`decode` already dropped alpha that is
//! fully opaque). The output carries no metadata: libwebp writes only the bitstream.

use image::DynamicImage;
use rayon::prelude::*;

use super::resize::Resized;
use super::stop::Stop;
use super::{EncodedVariant, PipelineError};

/// Encodes every variant at `quality` (0–100), in parallel, keeping their order.
///
/// # Errors
/// `Encode` when libwebp refuses a picture, `Stopped` when `stop` was raised before a variant
/// began.
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
                webp: webp(&variant.image, quality).map_err(|reason| PipelineError::Encode {
                    variant: variant.name.clone(),
                    reason,
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
/// A description of libwebp's error.
pub fn webp(image: &DynamicImage, quality: f32) -> Result<Vec<u8>, String> {
    let (width, height) = (image.width(), image.height());
    let mut config = webp::WebPConfig::new().map_err(|()| "libwebp version mismatch".to_owned())?;
    config.quality = quality.clamp(0.0, 100.0);
    config.method = method(width, height);
    let encoded = match image {
        DynamicImage::ImageRgb8(rgb) => {
            webp::Encoder::from_rgb(rgb.as_raw(), width, height).encode_advanced(&config)
        }
        DynamicImage::ImageRgba8(rgba) => {
            webp::Encoder::from_rgba(rgba.as_raw(), width, height).encode_advanced(&config)
        }
        other if other.color().has_alpha() => {
            let rgba = other.to_rgba8();
            webp::Encoder::from_rgba(rgba.as_raw(), width, height).encode_advanced(&config)
        }
        other => {
            let rgb = other.to_rgb8();
            webp::Encoder::from_rgb(rgb.as_raw(), width, height).encode_advanced(&config)
        }
    };
    encoded
        .map(|memory| memory.to_vec())
        .map_err(|err| format!("{err:?}"))
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
