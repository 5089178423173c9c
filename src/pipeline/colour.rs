//! Colour to sRGB: embedded ICC profiles (with moxcms), CMYK, and nclx wide-gamut/HDR.
//!
//! Runs on the decoded image before orientation and resizing, in its decoded bit depth, so
//! that resizing mixes sRGB values and the WebP variants (which carry no ICC profile) look
//! as the source did. A profile that cannot be parsed or transformed is ignored: a broken
//! ICC block must not fail an otherwise good image. Rendering intent is perceptual (the ICC
//! default, and what lcms/Pillow use by default), so CMYK LUT profiles map as print tools do.
//!
//! HDR (PQ/HLG) sources are tone-mapped with a simple hue-preserving shoulder: SDR white
//! (203 cd/m², BT.2408) maps to 1.0 less a soft knee, highlights compress towards 1.0.

use image::{DynamicImage, ImageBuffer, Rgb, RgbImage};
use moxcms::{ColorProfile, DataColorSpace, Layout, RenderingIntent, TransformOptions};

/// The colour description of an nclx (`colr`) box: ITU-T H.273 code points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cicp {
    /// Colour primaries (1 BT.709, 9 BT.2020, 11/12 DCI-P3/Display P3).
    pub primaries: u8,
    /// Transfer characteristics (13 sRGB, 16 PQ, 18 HLG, 8 linear).
    pub transfer: u8,
}

fn options() -> TransformOptions {
    TransformOptions {
        rendering_intent: RenderingIntent::Perceptual,
        ..TransformOptions::default()
    }
}

/// Converts `image` from the colour space its ICC profile describes to sRGB.
///
/// RGB and grey profiles are applied in 8 or 16 bits as decoded; grey images come out as RGB.
/// Without a profile, with an sRGB profile, or with a profile that cannot be used, the image
/// is returned unchanged.
pub fn to_srgb(image: DynamicImage, icc: Option<&[u8]>) -> DynamicImage {
    let Some(icc) = icc else {
        return image;
    };
    let Ok(profile) = ColorProfile::new_from_slice(icc) else {
        return image;
    };
    if is_srgb(&profile, icc) {
        return image;
    }
    match profile.color_space {
        DataColorSpace::Rgb => rgb_to_srgb(image, &profile),
        DataColorSpace::Gray => grey_to_srgb(image, &profile),
        _ => image,
    }
}

/// Whether a profile is (close enough to) sRGB that converting would change nothing.
fn is_srgb(profile: &ColorProfile, icc: &[u8]) -> bool {
    let srgb = ColorProfile::new_srgb();
    let near = |a: moxcms::Xyzd, b: moxcms::Xyzd| {
        (a.x - b.x).abs() < 0.002 && (a.y - b.y).abs() < 0.002 && (a.z - b.z).abs() < 0.002
    };
    profile.color_space == DataColorSpace::Rgb
        && near(profile.red_colorant, srgb.red_colorant)
        && near(profile.green_colorant, srgb.green_colorant)
        && near(profile.blue_colorant, srgb.blue_colorant)
        && icc.windows(4).any(|w| w == b"sRGB")
}

fn rgb_to_srgb(image: DynamicImage, profile: &ColorProfile) -> DynamicImage {
    let srgb = ColorProfile::new_srgb();
    let deep = matches!(
        image,
        DynamicImage::ImageRgb16(_)
            | DynamicImage::ImageRgba16(_)
            | DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
            | DynamicImage::ImageRgb32F(_)
            | DynamicImage::ImageRgba32F(_)
    );
    let alpha = image.color().has_alpha();
    let layout = if alpha { Layout::Rgba } else { Layout::Rgb };
    let (width, height) = (image.width(), image.height());
    if deep {
        let Ok(transform) = profile.create_transform_16bit(layout, &srgb, layout, options()) else {
            return image;
        };
        let src = if alpha {
            image.into_rgba16().into_raw()
        } else {
            image.into_rgb16().into_raw()
        };
        let mut dst = vec![0u16; src.len()];
        if transform.transform(&src, &mut dst).is_err() {
            return rebuild16(width, height, alpha, src);
        }
        rebuild16(width, height, alpha, dst)
    } else {
        let Ok(transform) = profile.create_transform_8bit(layout, &srgb, layout, options()) else {
            return image;
        };
        let src = if alpha {
            image.into_rgba8().into_raw()
        } else {
            image.into_rgb8().into_raw()
        };
        let mut dst = vec![0u8; src.len()];
        if transform.transform(&src, &mut dst).is_err() {
            return rebuild8(width, height, alpha, src);
        }
        rebuild8(width, height, alpha, dst)
    }
}

fn grey_to_srgb(image: DynamicImage, profile: &ColorProfile) -> DynamicImage {
    let srgb = ColorProfile::new_srgb();
    let alpha = image.color().has_alpha();
    let (src_layout, dst_layout) = if alpha {
        (Layout::GrayAlpha, Layout::Rgba)
    } else {
        (Layout::Gray, Layout::Rgb)
    };
    let (width, height) = (image.width(), image.height());
    let Ok(transform) = profile.create_transform_8bit(src_layout, &srgb, dst_layout, options())
    else {
        return image;
    };
    let src = if alpha {
        image.to_luma_alpha8().into_raw()
    } else {
        image.to_luma8().into_raw()
    };
    let pixels = src.len() / if alpha { 2 } else { 1 };
    let mut dst = vec![0u8; pixels * if alpha { 4 } else { 3 }];
    if transform.transform(&src, &mut dst).is_err() {
        return image;
    }
    rebuild8(width, height, alpha, dst)
}

fn rebuild8(width: u32, height: u32, alpha: bool, data: Vec<u8>) -> DynamicImage {
    let image = if alpha {
        ImageBuffer::from_raw(width, height, data).map(DynamicImage::ImageRgba8)
    } else {
        ImageBuffer::from_raw(width, height, data).map(DynamicImage::ImageRgb8)
    };
    image.unwrap_or_else(|| DynamicImage::new_rgb8(width, height))
}

fn rebuild16(width: u32, height: u32, alpha: bool, data: Vec<u16>) -> DynamicImage {
    let image = if alpha {
        ImageBuffer::from_raw(width, height, data).map(DynamicImage::ImageRgba16)
    } else {
        ImageBuffer::from_raw(width, height, data).map(DynamicImage::ImageRgb16)
    };
    image.unwrap_or_else(|| DynamicImage::new_rgb8(width, height))
}

/// Converts 8-bit CMYK samples (C, M, Y, K per pixel, 0 = no ink) to sRGB.
///
/// With a CMYK ICC profile the conversion goes through it; without one (or with a profile that
/// cannot be used) it falls back to the naive `(1 − C)(1 − K)` formula, which is what
/// libjpeg-based tools show for untagged CMYK.
pub fn cmyk_to_srgb(cmyk: &[u8], width: u32, height: u32, icc: Option<&[u8]>) -> RgbImage {
    let pixels = cmyk.len() / 4;
    if let Some(profile) = icc.and_then(|icc| ColorProfile::new_from_slice(icc).ok())
        && profile.color_space == DataColorSpace::Cmyk
        && let Ok(transform) = profile.create_transform_8bit(
            Layout::Rgba,
            &ColorProfile::new_srgb(),
            Layout::Rgb,
            options(),
        )
    {
        let mut dst = vec![0u8; pixels * 3];
        if transform.transform(&cmyk[..pixels * 4], &mut dst).is_ok()
            && let Some(image) = RgbImage::from_raw(width, height, dst)
        {
            return image;
        }
    }
    let mut out = RgbImage::new(width, height);
    for (pixel, ink) in out.pixels_mut().zip(cmyk.chunks_exact(4)) {
        let white = |c: u8| {
            let v = (255 - u32::from(c)) * (255 - u32::from(ink[3]));
            ((v + 127) / 255) as u8
        };
        *pixel = Rgb([white(ink[0]), white(ink[1]), white(ink[2])]);
    }
    out
}

/// Converts an nclx-described image (wide gamut and/or PQ/HLG HDR) to SDR sRGB.
///
/// BT.709/sRGB sources are returned unchanged; unknown code points too.
pub fn from_cicp(image: DynamicImage, cicp: Cicp) -> DynamicImage {
    let matrix: [[f32; 3]; 3] = match cicp.primaries {
        9 => [
            // BT.2020 → BT.709 (linear light).
            [1.660_491, -0.587_641_1, -0.072_849_86],
            [-0.124_550_5, 1.132_899_9, -0.008_349_42],
            [-0.018_150_76, -0.100_578_9, 1.118_729_6],
        ],
        11 | 12 => [
            // Display P3 (D65) → BT.709.
            [1.224_940_2, -0.224_940_2, 0.0],
            [-0.042_056_955, 1.042_057, 0.0],
            [-0.019_637_555, -0.078_636_05, 1.098_273_6],
        ],
        _ => [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    };
    let hdr = matches!(cicp.transfer, 16 | 18);
    if !hdr && !matches!(cicp.primaries, 9 | 11 | 12) {
        return image;
    }
    let alpha = image.color().has_alpha();
    let mut rgba = image.into_rgba32f();
    for pixel in rgba.pixels_mut() {
        let [r, g, b, _] = &mut pixel.0;
        let linear = [*r, *g, *b].map(|v| to_linear(v, cicp.transfer));
        let mut out = [0.0f32; 3];
        for (o, row) in out.iter_mut().zip(&matrix) {
            *o = (row[0] * linear[0] + row[1] * linear[1] + row[2] * linear[2]).max(0.0);
        }
        if hdr {
            let peak = out[0].max(out[1]).max(out[2]);
            if peak > KNEE {
                let scale = shoulder(peak) / peak;
                out = out.map(|v| v * scale);
            }
        }
        [*r, *g, *b] = out.map(srgb_encode);
    }
    let out = DynamicImage::ImageRgba32F(rgba);
    if alpha {
        DynamicImage::ImageRgba16(out.into_rgba16())
    } else {
        DynamicImage::ImageRgb16(out.into_rgb16())
    }
}

/// Where the highlight shoulder starts, relative to SDR white.
const KNEE: f32 = 0.75;

/// Compresses `[KNEE, ∞)` smoothly into `[KNEE, 1)`, continuous with slope 1 at the knee.
fn shoulder(x: f32) -> f32 {
    let t = (x - KNEE) / (1.0 - KNEE);
    KNEE + (1.0 - KNEE) * t / (1.0 + t)
}

/// Decodes a signal value to linear light where 1.0 is SDR white.
fn to_linear(v: f32, transfer: u8) -> f32 {
    let v = v.clamp(0.0, 1.0);
    match transfer {
        16 => {
            // SMPTE ST 2084 (PQ): absolute cd/m², SDR white at 203.
            const M1: f32 = 0.159_301_76;
            const M2: f32 = 78.843_75;
            const C1: f32 = 0.835_937_5;
            const C2: f32 = 18.851_563;
            const C3: f32 = 18.6875;
            let p = v.powf(1.0 / M2);
            let nits = 10_000.0 * ((p - C1).max(0.0) / (C2 - C3 * p)).powf(1.0 / M1);
            nits / 203.0
        }
        18 => {
            // ARIB STD-B67 (HLG) inverse OETF, a 1000 cd/m² display (gamma 1.2), white at 203.
            const A: f32 = 0.178_832_77;
            const B: f32 = 0.284_668_92;
            const C: f32 = 0.559_910_7;
            let scene = if v <= 0.5 {
                v * v / 3.0
            } else {
                (((v - C) / A).exp() + B) / 12.0
            };
            scene.powf(1.2) * 1000.0 / 203.0
        }
        8 => v,
        _ => srgb_decode(v),
    }
}

fn srgb_decode(v: f32) -> f32 {
    if v <= 0.040_45 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

fn srgb_encode(v: f32) -> f32 {
    let v = v.clamp(0.0, 1.0);
    if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_cmyk_is_not_inverted() {
        // No ink is white, full key is black, full cyan is cyan.
        let cmyk = [0, 0, 0, 0, 0, 0, 0, 255, 255, 0, 0, 0];
        let rgb = cmyk_to_srgb(&cmyk, 3, 1, None);
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [0, 0, 0]);
        assert_eq!(rgb.get_pixel(2, 0).0, [0, 255, 255]);
    }

    #[test]
    fn pq_white_and_black_are_sensible() {
        // PQ 203 cd/m² is signal ~0.58: it must land near, not above, SDR white.
        let white = to_linear(0.580_7, 16);
        assert!((white - 1.0).abs() < 0.02, "{white}");
        assert!(shoulder(1.0) < 1.0 && shoulder(1.0) > 0.8);
        assert!(shoulder(49.0) < 1.0);
        assert_eq!(to_linear(0.0, 16), 0.0);
    }

    #[test]
    fn images_without_profile_are_untouched() {
        let image = DynamicImage::new_rgb8(2, 2);
        assert!(matches!(to_srgb(image, None), DynamicImage::ImageRgb8(_)));
    }
}
