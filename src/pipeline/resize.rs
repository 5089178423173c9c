//! Variant geometry and resizing: Lanczos3 via `fast_image_resize` (SIMD), never enlarging.
//!
//! `plan` is the pure size arithmetic (what to crop, what size to output); `all` runs it for
//! every variant. Alpha is premultiplied during the resize (fast_image_resize's default
//! `mul_div_alpha`), so transparent pixels do not bleed dark fringes. Input is the oriented
//! 8-bit RGB/RGBA image from `decode`/`orient`; encoding is left to `encode`.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;
use rayon::prelude::*;

use super::stop::Stop;
use super::{Fit, PipelineError, VariantSpec};

/// What to do for one variant: take `crop` (left, top, width, height) of the source and
/// scale it to `width`×`height`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Source region, in source pixels (fractional for exact centring when scaling).
    pub crop: (f64, f64, f64, f64),
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
}

impl Plan {
    /// The same plan for the image at `from` pixels stored at `to` pixels: the crop scales,
    /// the output size stays.
    #[must_use]
    pub fn onto(self, from: (u32, u32), to: (u32, u32)) -> Self {
        if from == to {
            return self;
        }
        let x = f64::from(to.0) / f64::from(from.0.max(1));
        let y = f64::from(to.1) / f64::from(from.1.max(1));
        let (left, top, width, height) = self.crop;
        let (left, top) = (left * x, top * y);
        // Rounding must not push the region past the picture's edge by a hair.
        Self {
            crop: (
                left,
                top,
                (width * x).min(f64::from(to.0) - left),
                (height * y).min(f64::from(to.1) - top),
            ),
            ..self
        }
    }

    /// Whether the output is the source region pixel for pixel (no resampling needed).
    pub fn is_copy(&self) -> bool {
        self.crop.2 == f64::from(self.width) && self.crop.3 == f64::from(self.height)
    }
}

/// One resized variant, before encoding.
#[derive(Debug, Clone)]
pub struct Resized {
    /// The variant's name.
    pub name: String,
    /// 8-bit RGB or RGBA pixels.
    pub image: DynamicImage,
}

/// Computes a variant's crop and output size for a `src_width`×`src_height` image.
///
/// `Inside` fits the box (or bounds the width when there is no height), keeping the ratio.
/// `Cover` fills the box and crops the overflow, centred; when the image is smaller than the
/// box, the output is the largest centred crop of the box's aspect ratio, unscaled.
/// Neither ever enlarges. A `Cover` without a height acts as `Inside`.
pub fn plan(src_width: u32, src_height: u32, spec: &VariantSpec) -> Plan {
    let (sw, sh) = (f64::from(src_width), f64::from(src_height));
    let whole = (0.0, 0.0, sw, sh);
    let box_w = f64::from(spec.width.max(1));
    match (spec.fit, spec.height) {
        (Fit::Cover, Some(box_h)) => {
            let box_h = f64::from(box_h.max(1));
            // The largest centred region of the box's aspect ratio.
            let crop_w = sw.min(sh * box_w / box_h);
            let crop_h = sh.min(sw * box_h / box_w);
            if crop_w >= box_w && crop_h >= box_h {
                Plan {
                    crop: ((sw - crop_w) / 2.0, (sh - crop_h) / 2.0, crop_w, crop_h),
                    width: spec.width.max(1),
                    height: box_h as u32,
                }
            } else {
                // Smaller than the box: crop only, in whole pixels.
                let width = round_side(crop_w, src_width);
                let height = round_side(crop_h, src_height);
                let left = f64::from((src_width - width) / 2);
                let top = f64::from((src_height - height) / 2);
                Plan {
                    crop: (left, top, f64::from(width), f64::from(height)),
                    width,
                    height,
                }
            }
        }
        (_, height) => {
            let box_h = height.map_or(f64::INFINITY, |h| f64::from(h.max(1)));
            let scale = (box_w / sw).min(box_h / sh);
            if scale >= 1.0 {
                return Plan {
                    crop: whole,
                    width: src_width,
                    height: src_height,
                };
            }
            Plan {
                crop: whole,
                width: round_side(sw * scale, src_width),
                height: round_side(sh * scale, src_height),
            }
        }
    }
}

/// Rounds a computed side to whole pixels, at least 1 and at most `max`.
fn round_side(value: f64, max: u32) -> u32 {
    (value.round() as u32).clamp(1, max.max(1))
}

/// Makes every variant of `image`, in the order of `specs`, in parallel.
///
/// Sizes and crops are planned on `size`, the image's displayed size, then carried over to
/// `image`, which may be smaller (shrunk on load): the variants come out as a full-size decode
/// would make them.
///
/// # Errors
/// `Resize` if the resizer rejects a size (not expected: sizes come from `plan`), `Stopped`
/// when `stop` was raised before a variant began.
pub fn all(
    image: &DynamicImage,
    size: (u32, u32),
    specs: &[VariantSpec],
    stop: &Stop,
) -> Result<Vec<Resized>, PipelineError> {
    specs
        .par_iter()
        .map(|spec| {
            stop.check()?;
            let plan = plan(size.0, size.1, spec).onto(size, (image.width(), image.height()));
            Ok(Resized {
                name: spec.name.clone(),
                image: apply(image, &plan)?,
            })
        })
        .collect()
}

/// Crops and scales `image` as `plan` says.
///
/// # Errors
/// `Resize` if the resizer fails.
pub fn apply(image: &DynamicImage, plan: &Plan) -> Result<DynamicImage, PipelineError> {
    if plan.is_copy() {
        let (left, top, _, _) = plan.crop;
        return Ok(image.crop_imm(left as u32, top as u32, plan.width, plan.height));
    }
    scale(image, plan, ResizeAlg::Convolution(FilterType::Lanczos3))
}

/// Scales to fit `max_side` with a cheap filter (for thumbnails such as the blurhash input).
///
/// # Errors
/// `Resize` if the resizer fails.
pub fn thumbnail(image: &DynamicImage, max_side: u32) -> Result<DynamicImage, PipelineError> {
    let spec = VariantSpec {
        name: String::new(),
        width: max_side,
        height: Some(max_side),
        fit: Fit::Inside,
    };
    let plan = plan(image.width(), image.height(), &spec);
    if plan.is_copy() {
        return Ok(image.clone());
    }
    scale(image, &plan, ResizeAlg::Convolution(FilterType::Box))
}

fn scale(
    image: &DynamicImage,
    plan: &Plan,
    algorithm: ResizeAlg,
) -> Result<DynamicImage, PipelineError> {
    let mut out = if image.color().has_alpha() {
        DynamicImage::new_rgba8(plan.width, plan.height)
    } else {
        DynamicImage::new_rgb8(plan.width, plan.height)
    };
    let (left, top, width, height) = plan.crop;
    let options = ResizeOptions::new()
        .resize_alg(algorithm)
        .crop(left, top, width, height)
        .use_alpha(true);
    Resizer::new()
        .resize(image, &mut out, &options)
        .map_err(|err| PipelineError::Resize {
            width: plan.width,
            height: plan.height,
            reason: err.to_string(),
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(width: u32, height: Option<u32>, fit: Fit) -> VariantSpec {
        VariantSpec {
            name: "v".into(),
            width,
            height,
            fit,
        }
    }

    #[test]
    fn variant_sizes() {
        use Fit::{Cover, Inside};
        // (source, variant, expected output)
        for (src, variant, want) in [
            ((3000, 2000), spec(640, None, Inside), (640, 427)),
            ((500, 300), spec(640, None, Inside), (500, 300)),
            ((640, 480), spec(640, None, Inside), (640, 480)),
            ((2000, 3000), spec(640, None, Inside), (640, 960)),
            ((2000, 3000), spec(640, Some(640), Inside), (427, 640)),
            ((4032, 3024), spec(1920, None, Inside), (1920, 1440)),
            ((13, 169), spec(640, None, Inside), (13, 169)),
            ((100, 50), spec(64, Some(64), Cover), (50, 50)),
            ((1000, 500), spec(64, Some(64), Cover), (64, 64)),
            ((3000, 2000), spec(256, Some(256), Cover), (256, 256)),
            ((60, 200), spec(256, Some(128), Cover), (60, 30)),
            ((300, 100), spec(256, Some(256), Cover), (100, 100)),
            ((1, 1), spec(64, Some(64), Cover), (1, 1)),
            ((10_000, 1), spec(640, None, Inside), (640, 1)),
            ((800, 600), spec(640, None, Cover), (640, 480)),
        ] {
            let p = plan(src.0, src.1, &variant);
            assert_eq!((p.width, p.height), want, "{src:?} {variant:?}");
            assert!(
                p.width <= src.0 && p.height <= src.1,
                "never enlarge {src:?}"
            );
        }
    }

    #[test]
    fn cover_crops_are_centred() {
        let p = plan(300, 100, &spec(64, Some(64), Fit::Cover));
        assert_eq!(p.crop, (100.0, 0.0, 100.0, 100.0));
        let p = plan(1000, 500, &spec(64, Some(64), Fit::Cover));
        assert_eq!(p.crop, (250.0, 0.0, 500.0, 500.0));
        let p = plan(100, 50, &spec(64, Some(64), Fit::Cover));
        assert!(p.is_copy());
    }

    #[test]
    fn resizing_keeps_the_channel_layout() {
        let rgb = DynamicImage::new_rgb8(300, 200);
        let rgba = DynamicImage::new_rgba8(300, 200);
        let specs = [spec(64, Some(64), Fit::Cover), spec(100, None, Fit::Inside)];
        let out = all(&rgb, (300, 200), &specs, &Stop::default()).unwrap();
        let sizes: Vec<_> = out
            .iter()
            .map(|r| (r.image.width(), r.image.height()))
            .collect();
        assert_eq!(sizes, [(64, 64), (100, 67)]);
        assert!(
            out.iter()
                .all(|r| matches!(r.image, DynamicImage::ImageRgb8(_)))
        );
        let out = all(&rgba, (300, 200), &specs, &Stop::default()).unwrap();
        assert!(
            out.iter()
                .all(|r| matches!(r.image, DynamicImage::ImageRgba8(_)))
        );
    }

    #[test]
    fn a_picture_shrunk_on_load_gives_the_full_size_variants() {
        // 3000×2000 shrunk to 750×500 on load: planned on 3000×2000, cropped on 750×500.
        let quarter = DynamicImage::new_rgb8(750, 500);
        let specs = [spec(64, Some(64), Fit::Cover), spec(333, None, Fit::Inside)];
        let out = all(&quarter, (3000, 2000), &specs, &Stop::default()).unwrap();
        let sizes: Vec<_> = out
            .iter()
            .map(|r| (r.image.width(), r.image.height()))
            .collect();
        assert_eq!(sizes, [(64, 64), (333, 222)]);
        let cover = plan(3000, 2000, &specs[0]).onto((3000, 2000), (750, 500));
        assert_eq!(cover.crop, (125.0, 0.0, 500.0, 500.0));
        assert_eq!((cover.width, cover.height), (64, 64));
        // 1737 × 218 / 1737 is 218.00000000000003 in floating point: kept inside the picture.
        let eighth = DynamicImage::new_rgb8(493, 218);
        let out = all(&eighth, (3940, 1737), &specs[..1], &Stop::default()).unwrap();
        assert_eq!((out[0].image.width(), out[0].image.height()), (64, 64));
    }

    #[test]
    fn transparent_pixels_do_not_darken_edges() {
        // Left half opaque white, right half fully transparent black.
        let img = image::RgbaImage::from_fn(64, 8, |x, _| {
            if x < 32 {
                image::Rgba([255, 255, 255, 255])
            } else {
                image::Rgba([0, 0, 0, 0])
            }
        });
        let out = apply(
            &DynamicImage::ImageRgba8(img),
            &plan(64, 8, &spec(16, None, Fit::Inside)),
        );
        let out = out.map(|i| i.to_rgba8()).unwrap();
        // Near the edge, visible pixels stay white (premultiplied resize).
        for x in 0..16 {
            let p = out.get_pixel(x, 1);
            if p.0[3] > 16 {
                assert!(p.0[0] > 240, "x={x} {p:?}");
            }
        }
    }
}
