//! The image pipeline: bytes in, WebP variants + stripped original + facts out.
//!
//! Steps, in order (each a small module exporting a verb):
//! sniff::detect -> limits::check_header -> decode::first_frame (colour::to_srgb inside; a JPEG
//! is decoded at 1/2–1/8 by `shrink` when every use is that much smaller) -> orient::apply
//! -> resize::all (never enlarge) -> encode::webp_all (through `libwebp`, the one module allowed
//! `unsafe`) -> blurhash::of -> strip::metadata
//!
//! Formats are the second axis: `format` holds one module per container (jpeg, png, gif,
//! webp, tiff, heif) with the byte-level truth the steps ask for (header facts, completeness,
//! metadata stripping, the decodes `image` cannot do). `format::Container` picks a format's
//! walkers once; no step walks bytes itself.
//!
//! This module knows nothing of HTTP, queues or storage. It is synchronous and CPU-bound:
//! callers run it on a blocking thread. Panics (a decoder or walker meeting hostile input) are
//! caught in every public entry point (`probe`, `prepare`, `finish`) and become
//! `PipelineError::Panicked`.

pub mod blurhash;
pub mod colour;
pub mod decode;
pub mod encode;
pub mod format;
pub mod libwebp;
pub mod limits;
pub mod orient;
pub mod resize;
pub mod shrink;
pub mod sniff;
pub mod stop;
pub mod strip;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use stop::Stop;

// INTERFACE CONTRACT (the rest of the application relies on these exact names and shapes):

/// An input format the pipeline can identify from bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// JPEG (JFIF/EXIF), baseline, progressive or lossless.
    Jpeg,
    /// PNG, including APNG.
    Png,
    /// WebP, lossy, lossless or animated.
    Webp,
    /// GIF87a/GIF89a, possibly animated.
    Gif,
    /// AVIF (ISO-BMFF with an `avif`/`avis` brand).
    Avif,
    /// HEIC/HEIF (ISO-BMFF with a `heic`/`mif1`/... brand).
    Heic,
    /// TIFF, either byte order.
    Tiff,
}

impl ImageFormat {
    /// The MIME type, as used in `allowed_mime_types` (image/jpeg, image/png, image/webp, image/gif, image/avif, image/heic, image/tiff).
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Avif => "image/avif",
            Self::Heic => "image/heic",
            Self::Tiff => "image/tiff",
        }
    }

    /// The file extension of the stored original: jpg, png, webp, gif, avif, heic, tif.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Gif => "gif",
            Self::Avif => "avif",
            Self::Heic => "heic",
            Self::Tiff => "tif",
        }
    }

    /// The name people know the format by, for messages: "JPEG", "PNG", ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::Webp => "WebP",
            Self::Gif => "GIF",
            Self::Avif => "AVIF",
            Self::Heic => "HEIC",
            Self::Tiff => "TIFF",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a variant fills its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Fill the whole box and crop the overflow, centred.
    Cover,
    /// Fit inside the box (or bound the width when there is no height), keeping the ratio.
    Inside,
}

/// One output size.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantSpec {
    /// The variant's name (`xs`, `md`, ...), used as its file name.
    pub name: String,
    /// The box width in pixels.
    pub width: u32,
    /// The box height in pixels; `None` bounds the width only (and `Cover` then acts as `Inside`).
    pub height: Option<u32>,
    /// How the image fills the box.
    pub fit: Fit,
}

/// What to make for one upload (from its source type).
#[derive(Debug, Clone)]
pub struct OutputSpec {
    /// The variants to make, in the order the results are returned.
    pub variants: Vec<VariantSpec>,
    /// Lossy WebP quality, 0 to 100.
    pub quality: f32,
    /// Whether to return the stripped original.
    pub keep_original: bool,
}

/// Decoding limits, checked from the header before any pixel is decoded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most pixels (width × height) an image may declare.
    pub max_pixels: u64,
    /// Longest side an image may declare, in pixels.
    pub max_side: u32,
    /// The work budget: most bytes decoding may produce (width × height × channels × bytes
    /// per sample, plus the frames an animation's stripping re-codes).
    pub max_decoded_bytes: u64,
}

impl Limits {
    /// Checks a declared size against the limits.
    ///
    /// # Errors
    /// `TooManyPixels` when a side is over `max_side` or the area over `max_pixels`.
    pub fn check(&self, width: u32, height: u32) -> Result<(), PipelineError> {
        let pixels = u64::from(width) * u64::from(height);
        if width > self.max_side || height > self.max_side || pixels > self.max_pixels {
            return Err(PipelineError::TooManyPixels {
                width,
                height,
                limits: *self,
            });
        }
        Ok(())
    }

    /// Checks the bytes decoding would produce against the work budget.
    ///
    /// # Errors
    /// `OverBudget` when over `max_decoded_bytes`.
    pub fn check_work(&self, decoded_bytes: u64) -> Result<(), PipelineError> {
        if decoded_bytes > self.max_decoded_bytes {
            return Err(PipelineError::OverBudget {
                what: "decoding",
                needed: Some(decoded_bytes),
                budget: self.max_decoded_bytes,
            });
        }
        Ok(())
    }
}

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    /// The format sniffed from the bytes.
    pub format: ImageFormat,
    /// Stored width (before orientation); the canvas width for GIF and animated WebP.
    pub width: u32,
    /// Stored height (before orientation); the canvas height for GIF and animated WebP.
    pub height: u32,
}

/// One encoded variant.
#[derive(Debug, Clone)]
pub struct EncodedVariant {
    /// The variant's name, from its `VariantSpec`.
    pub name: String,
    /// Width of the encoded image.
    pub width: u32,
    /// Height of the encoded image.
    pub height: u32,
    /// The lossy WebP file.
    pub webp: Vec<u8>,
}

/// The result of `process`.
#[derive(Debug, Clone)]
pub struct Processed {
    /// The format sniffed from the bytes.
    pub format: ImageFormat,
    /// Displayed width (after orientation).
    pub width: u32,
    /// Displayed height (after orientation).
    pub height: u32,
    /// "W:H" reduced by gcd.
    pub aspect_ratio: String,
    /// Blurhash of the oriented image, 4×3 components.
    pub blurhash: String,
    /// In the order of `OutputSpec::variants`.
    pub variants: Vec<EncodedVariant>,
    /// The original's bytes with metadata stripped (None when `keep_original` is false).
    pub original: Option<Vec<u8>>,
    /// How long `finish` spent in each step.
    pub timings: FinishTimings,
}

/// How long [`prepare`] spent in each step, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PrepareTimings {
    /// Sniffing the format and checking the header.
    pub probe: Duration,
    /// Decoding the first frame and turning it upright.
    pub decode: Duration,
}

/// How long [`finish`] spent in each step, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FinishTimings {
    /// Making every variant's pixels.
    pub resize: Duration,
    /// Encoding every variant to WebP.
    pub encode: Duration,
    /// Stripping the original's metadata.
    pub strip: Duration,
}

/// Why the pipeline could not handle an input.
///
/// Messages are sentences a user can act on; `is_permanent` tells the worker whether a retry
/// could ever help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The input has no bytes at all.
    #[error("file is empty")]
    Empty,
    /// The bytes are not an image (text, HTML, unknown binary); `mime` is what they look like.
    #[error("file is {} ({mime}), not an image", sniff::describe(.mime))]
    NotAnImage {
        /// The sniffed MIME type, `application/octet-stream` when unknown.
        mime: &'static str,
    },
    /// The bytes are a kind of image this pipeline does not accept or cannot read (SVG, BMP, ...).
    #[error("{} is not accepted", sniff::describe(.mime))]
    UnsupportedFormat {
        /// The sniffed MIME type.
        mime: &'static str,
    },
    /// The format is accepted but this file uses a coding the decoder cannot read.
    #[error("{feature} is not supported")]
    UnsupportedFeature {
        /// The sniffed format.
        format: ImageFormat,
        /// What is not supported, e.g. "lossless JPEG".
        feature: &'static str,
    },
    /// The header declares more pixels, or a longer side, than the limits allow.
    #[error("image is {width}×{height}, over the {}", limit_text(*.width, *.height, .limits))]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limits it broke.
        limits: Limits,
    },
    /// The file ends before the image data does.
    #[error("truncated {format} data")]
    Truncated {
        /// The sniffed format.
        format: ImageFormat,
    },
    /// The header or the image data is malformed.
    #[error("corrupt {format} data: {reason}")]
    Corrupt {
        /// The sniffed format.
        format: ImageFormat,
        /// What is wrong, in words.
        reason: String,
    },
    /// The decoder refused the image data.
    #[error("cannot decode the {format} image: {source}")]
    Decode {
        /// The sniffed format.
        format: ImageFormat,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// Metadata cannot (yet) be stripped from this format, so no original can be kept.
    #[error("cannot strip metadata from {format} files, so the original cannot be kept")]
    StripUnsupported {
        /// The sniffed format.
        format: ImageFormat,
    },
    /// An animation has more frames than the pipeline will walk to clean the original.
    #[error("{format} has {frames} frames, over the {limit}-frame limit")]
    TooManyFrames {
        /// The sniffed format.
        format: ImageFormat,
        /// How many frames the file has.
        frames: usize,
        /// The limit.
        limit: usize,
    },
    /// Resizing failed (an internal error: sizes are checked before).
    #[error("resizing to {width}×{height} failed: {reason}")]
    Resize {
        /// Target width.
        width: u32,
        /// Target height.
        height: u32,
        /// The resizer's message.
        reason: String,
    },
    /// libwebp refused to encode a variant.
    #[error("WebP encoding of variant {variant} failed: {reason}")]
    Encode {
        /// The variant's name.
        variant: String,
        /// libwebp's error.
        reason: String,
    },
    /// The blurhash could not be computed.
    #[error("blurhash failed: {0}")]
    Blurhash(String),
    /// The header shows more work than the budget allows (decoded size, frames, or a
    /// compressed chunk that inflates past its cap); refused before any decoding.
    #[error("{}", budget_text(.what, *.needed, *.budget))]
    OverBudget {
        /// What would take the memory: `decoding`, or the chunk that inflates.
        what: &'static str,
        /// The bytes it needs, when the header tells.
        needed: Option<u64>,
        /// The budget or cap it is over.
        budget: u64,
    },
    /// The owner of the job stopped the work (its time limit passed).
    #[error("processing was stopped")]
    Stopped,
    /// A decoder or encoder panicked; the input is treated as hostile or corrupt.
    #[error("the image could not be processed (decoder crashed: {0})")]
    Panicked(String),
}

fn budget_text(what: &str, needed: Option<u64>, budget: u64) -> String {
    let mib = |bytes: u64| bytes.div_ceil(1 << 20);
    match needed {
        Some(needed) => format!(
            "{what} needs {} MiB, over the {} MiB work budget",
            mib(needed),
            mib(budget)
        ),
        None => format!("{what} inflates past its {} MiB cap", mib(budget)),
    }
}

fn limit_text(width: u32, height: u32, limits: &Limits) -> String {
    if width > limits.max_side || height > limits.max_side {
        format!("{}-pixel side limit", limits.max_side)
    } else {
        format!("{}-pixel limit", limits.max_pixels)
    }
}

impl PipelineError {
    /// Whether retrying the same bytes can never succeed.
    ///
    /// Everything about the input (format, limits, decoding, panics) is permanent; only
    /// encoder failures, which may come from memory pressure, are worth a retry.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Empty
            | Self::NotAnImage { .. }
            | Self::UnsupportedFormat { .. }
            | Self::UnsupportedFeature { .. }
            | Self::TooManyPixels { .. }
            | Self::OverBudget { .. }
            | Self::Truncated { .. }
            | Self::Corrupt { .. }
            | Self::Decode { .. }
            | Self::StripUnsupported { .. }
            | Self::TooManyFrames { .. }
            | Self::Resize { .. }
            | Self::Blurhash(_)
            | Self::Stopped
            | Self::Panicked(_) => true,
            Self::Encode { .. } => false,
        }
    }
}

/// Sniffs the format and reads the header only: format, stored size, limits.
///
/// Works on a prefix of the file (e.g. the first MiB of an upload) as long as the header is in
/// it; never decodes pixels, so it is fast on decompression bombs.
///
/// # Errors
/// `Empty`, `NotAnImage`, `UnsupportedFormat` (SVG, BMP, JPEG 2000, ...), `Corrupt`/`Truncated`
/// when the header is unreadable, `UnsupportedFeature`, `TooManyPixels`, `Panicked`.
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<Probe, PipelineError> {
    // It runs on untrusted bytes in the request path: a walker's panic is a refusal too.
    guarded(|| {
        let format = sniff::image_format(bytes)?;
        let (width, height) = limits::check_header(bytes, format, limits)?;
        Ok(Probe {
            format,
            width,
            height,
        })
    })
}

/// A decoded, upright, 8-bit sRGB image: what every later step (moderation, variants,
/// blurhash) works from, so the file is decoded once.
pub struct Prepared {
    /// The format sniffed from the bytes.
    pub format: ImageFormat,
    /// The EXIF orientation already applied to `image` (the stripped original keeps it).
    orientation: image::metadata::Orientation,
    /// The upright pixels: `width`×`height`, or smaller when the decoder shrank them on load
    /// for what [`shrink::Needs`] said they would become.
    pub image: image::DynamicImage,
    /// The displayed width of the image (after orientation), whatever size `image` is.
    pub width: u32,
    /// The displayed height of the image.
    pub height: u32,
    /// How long preparing took, step by step.
    pub timings: PrepareTimings,
}

impl Prepared {
    /// A copy no larger than `max_side` on either side, opaque RGB: the input of moderation.
    ///
    /// # Errors
    /// `Resize` when the scaler refuses the sizes.
    pub fn thumbnail(&self, max_side: u32) -> Result<image::RgbImage, PipelineError> {
        guarded(|| Ok(resize::thumbnail(&self.image, max_side)?.into_rgb8()))
    }

    /// `bytes` (the file this was prepared from) without metadata, its orientation written
    /// back where the format keeps it: the original that is kept.
    ///
    /// # Errors
    /// `StripUnsupported` (BigTIFF), `TooManyFrames` (GIFs over the frame limit), `Corrupt`,
    /// `Truncated`, `Panicked`.
    pub fn stripped_original(&self, bytes: &[u8]) -> Result<Vec<u8>, PipelineError> {
        guarded(|| strip::metadata(bytes, self.format, self.orientation))
    }
}

/// Runs the whole pipeline on one complete file: [`prepare`], then [`finish`].
///
/// # Errors
/// Everything `prepare` and `finish` return.
pub fn process(
    bytes: &[u8],
    spec: &OutputSpec,
    limits: &Limits,
) -> Result<Processed, PipelineError> {
    let prepared = prepare_until(
        bytes,
        limits,
        &shrink::Needs::outputs(spec),
        &Stop::default(),
    )?;
    finish(bytes, &prepared, spec)
}

/// Checks the header, decodes the first frame to sRGB at full size and applies the
/// orientation.
///
/// # Errors
/// Everything `probe` returns, plus `Truncated`/`Corrupt`/`Decode` from decoding and
/// `Panicked` when a decoder crashed.
pub fn prepare(bytes: &[u8], limits: &Limits) -> Result<Prepared, PipelineError> {
    prepare_until(bytes, limits, &shrink::Needs::full_size(), &Stop::default())
}

/// [`prepare`], with pixels only as large as `needs` requires (JPEGs shrink on load), giving
/// up with `Stopped` at the next step once `stop` is raised.
///
/// # Errors
/// As [`prepare`], and `Stopped`.
pub fn prepare_until(
    bytes: &[u8],
    limits: &Limits,
    needs: &shrink::Needs,
    stop: &Stop,
) -> Result<Prepared, PipelineError> {
    guarded(|| {
        let started = Instant::now();
        let probe = probe(bytes, limits)?;
        let probed = started.elapsed();
        let decoded = decode::first_frame(bytes, probe.format, limits, needs)?;
        stop.check()?;
        let (width, height) = orient::displayed(decoded.size, decoded.orientation);
        let image = orient::apply(decoded.image, decoded.orientation);
        Ok(Prepared {
            format: probe.format,
            orientation: decoded.orientation,
            image,
            width,
            height,
            timings: PrepareTimings {
                probe: probed,
                decode: started.elapsed() - probed,
            },
        })
    })
}

/// Makes the variants (in parallel with the blurhash) and the stripped original.
///
/// # Errors
/// `StripUnsupported` when the original must be kept but cannot be stripped (BigTIFF),
/// `TooManyFrames` for GIFs with more frames than `strip` re-codes, `Resize`, `Encode`, and
/// `Panicked`.
pub fn finish(
    bytes: &[u8],
    prepared: &Prepared,
    spec: &OutputSpec,
) -> Result<Processed, PipelineError> {
    finish_until(bytes, prepared, spec, &Stop::default())
}

/// [`finish`], giving up with `Stopped` before the next variant or the strip once `stop` is
/// raised.
///
/// # Errors
/// As [`finish`], and `Stopped`.
pub fn finish_until(
    bytes: &[u8],
    prepared: &Prepared,
    spec: &OutputSpec,
    stop: &Stop,
) -> Result<Processed, PipelineError> {
    guarded(|| {
        let image = &prepared.image;
        let (width, height) = (prepared.width, prepared.height);
        let mut timings = FinishTimings::default();
        let (variants, hash) = rayon::join(
            || {
                let started = Instant::now();
                let resized = resize::all(image, (width, height), &spec.variants, stop)?;
                timings.resize = started.elapsed();
                let encoded = encode::webp_all(&resized, spec.quality, stop);
                timings.encode = started.elapsed() - timings.resize;
                encoded
            },
            || blurhash::of(image),
        );
        let variants = variants?;
        stop.check()?;
        let started = Instant::now();
        let original = if spec.keep_original {
            Some(prepared.stripped_original(bytes)?)
        } else {
            None
        };
        timings.strip = started.elapsed();
        Ok(Processed {
            format: prepared.format,
            width,
            height,
            aspect_ratio: aspect_ratio(width, height),
            blurhash: hash?,
            variants,
            original,
            timings,
        })
    })
}

/// Runs `step`, turning a panic (a decoder meeting hostile input) into `Panicked`.
fn guarded<T>(step: impl FnOnce() -> Result<T, PipelineError>) -> Result<T, PipelineError> {
    catch_unwind(AssertUnwindSafe(step))
        .unwrap_or_else(|payload| Err(PipelineError::Panicked(panic_message(payload.as_ref()))))
}

/// `"W:H"` reduced by their greatest common divisor: 1200×800 → `"3:2"`.
pub fn aspect_ratio(width: u32, height: u32) -> String {
    let divisor = gcd(width, height).max(1);
    format!("{}:{}", width / divisor, height / divisor)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aspect_ratio_is_reduced() {
        for (w, h, want) in [
            (1200, 800, "3:2"),
            (1920, 1080, "16:9"),
            (64, 64, "1:1"),
            (1, 1, "1:1"),
            (1203, 799, "1203:799"),
            (3024, 4032, "3:4"),
            (0, 0, "0:0"),
        ] {
            assert_eq!(aspect_ratio(w, h), want, "{w}x{h}");
        }
    }

    #[test]
    fn messages_name_the_problem() {
        let limits = Limits {
            max_pixels: 100_000_000,
            max_side: 100_000,
            max_decoded_bytes: 512 << 20,
        };
        let err = PipelineError::TooManyPixels {
            width: 65535,
            height: 65535,
            limits,
        };
        assert_eq!(
            err.to_string(),
            "image is 65535×65535, over the 100000000-pixel limit"
        );
        let err = PipelineError::Truncated {
            format: ImageFormat::Jpeg,
        };
        assert_eq!(err.to_string(), "truncated JPEG data");
        let err = PipelineError::UnsupportedFormat {
            mime: "image/svg+xml",
        };
        assert_eq!(err.to_string(), "SVG is not accepted");
        assert_eq!(PipelineError::Empty.to_string(), "file is empty");
        assert!(err.is_permanent());
    }

    #[test]
    fn empty_input_is_refused() {
        let limits = Limits {
            max_pixels: 100,
            max_side: 10,
            max_decoded_bytes: 512 << 20,
        };
        assert!(matches!(probe(&[], &limits), Err(PipelineError::Empty)));
    }
}
