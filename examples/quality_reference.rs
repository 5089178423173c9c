//! The quality yardstick of `scripts/bench-processing`: for each encoded variant of SOURCE, a
//! careful reference of the same size and a PNG of the variant, so that `dssim` can score both
//! tools against the same truth.
//!
//!   cargo run --release --example quality_reference -- SOURCE OUT_DIR VARIANT.webp...
//!
//! The reference is the whole decoded image (upright sRGB, decoded at full size by this
//! project's decoder), cropped to the variant's aspect ratio around the centre, and scaled with
//! a separable Lanczos3 in linear light and f64 — slow and plain on purpose. For each
//! `VARIANT.webp` it writes `OUT_DIR/<n>.ref.png` and `OUT_DIR/<n>.png` (n = argument index) and
//! prints `<n>\t<variant path>\t<ref png>\t<variant png>`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use image::{DynamicImage, RgbImage};
use ximagepipeline::pipeline::{self, Limits};

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [source, out, variants @ ..] = args.as_slice() else {
        bail!("usage: quality_reference SOURCE OUT_DIR VARIANT.webp...");
    };
    let bytes = std::fs::read(source).with_context(|| format!("cannot read {source:?}"))?;
    let limits = Limits {
        max_pixels: 200_000_000,
        max_side: 50_000,
        max_decoded_bytes: 512 << 20,
    };
    let prepared = pipeline::prepare(&bytes, &limits).context("cannot decode the source")?;
    let linear = to_linear(&prepared.image.to_rgb8());
    std::fs::create_dir_all(out)?;
    for (n, variant) in variants.iter().enumerate() {
        let encoded = image::open(variant).with_context(|| format!("cannot read {variant:?}"))?;
        let (width, height) = (encoded.width(), encoded.height());
        let reference = to_srgb(&lanczos3(
            &linear,
            crop_to_ratio(&linear, width, height),
            width,
            height,
        ));
        let reference_png = out.join(format!("{n}.ref.png"));
        let variant_png = out.join(format!("{n}.png"));
        reference.save(&reference_png)?;
        DynamicImage::ImageRgb8(encoded.to_rgb8()).save(&variant_png)?;
        println!(
            "{n}\t{}\t{}\t{}",
            show(variant),
            show(&reference_png),
            show(&variant_png)
        );
    }
    Ok(())
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

/// Linear-light RGB, row-major, f64.
struct Linear {
    width: usize,
    height: usize,
    pixels: Vec<[f64; 3]>,
}

fn to_linear(image: &RgbImage) -> Linear {
    let table: Vec<f64> = (0..256)
        .map(|v| {
            let c = f64::from(v) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        })
        .collect();
    Linear {
        width: image.width() as usize,
        height: image.height() as usize,
        pixels: image
            .pixels()
            .map(|p| p.0.map(|c| table[usize::from(c)]))
            .collect(),
    }
}

fn to_srgb(image: &Linear) -> RgbImage {
    let encode = |c: f64| {
        let c = c.clamp(0.0, 1.0);
        let v = if c <= 0.003_130_8 {
            c * 12.92
        } else {
            1.055 * c.powf(1.0 / 2.4) - 0.055
        };
        (v * 255.0).round() as u8
    };
    RgbImage::from_fn(image.width as u32, image.height as u32, |x, y| {
        image::Rgb(image.pixels[y as usize * image.width + x as usize].map(encode))
    })
}

/// The largest centred region of `width`:`height` aspect ratio: (left, top, width, height).
fn crop_to_ratio(image: &Linear, width: u32, height: u32) -> (f64, f64, f64, f64) {
    let (sw, sh) = (image.width as f64, image.height as f64);
    let (w, h) = (f64::from(width), f64::from(height));
    let (cw, ch) = (sw.min(sh * w / h), sh.min(sw * h / w));
    // Within a pixel of the whole image: the variant is the whole image (rounded sides).
    if sw - cw < 1.0 && sh - ch < 1.0 {
        return (0.0, 0.0, sw, sh);
    }
    ((sw - cw) / 2.0, (sh - ch) / 2.0, cw, ch)
}

fn lanczos3(image: &Linear, crop: (f64, f64, f64, f64), width: u32, height: u32) -> Linear {
    let (left, top, crop_w, crop_h) = crop;
    let across = weights(image.width, left, crop_w, width as usize);
    let down = weights(image.height, top, crop_h, height as usize);
    // Horizontal pass over every source row, then vertical.
    let mut rows = vec![[0.0; 3]; width as usize * image.height];
    for y in 0..image.height {
        let row = &image.pixels[y * image.width..(y + 1) * image.width];
        for (x, (first, taps)) in across.iter().enumerate() {
            rows[y * width as usize + x] = blend(taps, |i| row[first + i]);
        }
    }
    let mut pixels = vec![[0.0; 3]; width as usize * height as usize];
    for (y, (first, taps)) in down.iter().enumerate() {
        for x in 0..width as usize {
            pixels[y * width as usize + x] =
                blend(taps, |i| rows[(first + i) * width as usize + x]);
        }
    }
    Linear {
        width: width as usize,
        height: height as usize,
        pixels,
    }
}

fn blend(taps: &[f64], pixel: impl Fn(usize) -> [f64; 3]) -> [f64; 3] {
    let mut sum = [0.0; 3];
    for (i, weight) in taps.iter().enumerate() {
        let p = pixel(i);
        for c in 0..3 {
            sum[c] += weight * p[c];
        }
    }
    sum
}

/// For each output sample: the first source index and the normalised Lanczos3 weights, the
/// kernel widened by the scale factor when shrinking (so it filters, not just samples).
fn weights(len: usize, start: f64, span: f64, out: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = span / out as f64;
    let support = 3.0 * scale.max(1.0);
    (0..out)
        .map(|i| {
            let centre = start + (i as f64 + 0.5) * scale;
            let first = ((centre - support).floor().max(0.0)) as usize;
            let last = ((centre + support).ceil() as usize).min(len);
            let mut taps: Vec<f64> = (first..last)
                .map(|j| lanczos((j as f64 + 0.5 - centre) / scale.max(1.0)))
                .collect();
            let total: f64 = taps.iter().sum();
            taps.iter_mut().for_each(|w| *w /= total);
            (first, taps)
        })
        .collect()
}

fn lanczos(x: f64) -> f64 {
    let x = x.abs();
    if x < 1e-9 {
        1.0
    } else if x >= 3.0 {
        0.0
    } else {
        let px = std::f64::consts::PI * x;
        3.0 * px.sin() * (px / 3.0).sin() / (px * px)
    }
}
