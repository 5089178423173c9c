//! The byte-level truth of each container, one module per format: header facts (size,
//! coding, frames), the completeness check, metadata stripping and the decoding helpers that
//! only make sense for one format.
//!
//! The steps of `super` ask these modules; they never walk bytes themselves. Walkers read
//! sizes and boundaries only, never pixel data, so they are fast on any input and work on a
//! prefix of a file. They fail with a typed [`WalkError`], turned into a `PipelineError` in
//! one place ([`WalkError::into_pipeline`]), so a reworded message cannot change a refusal.

pub mod exif;
pub mod gif;
pub mod heif;
pub mod icc;
pub mod jpeg;
pub mod png;
pub mod tiff;
pub mod webp;

use std::borrow::Cow;

use super::{ImageFormat, PipelineError};

/// How far a walk got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The end marker was found; the image ends at this offset (anything after is not part of it).
    At(usize),
    /// The data ran out before the end marker: a truncated file, or a prefix.
    Missing,
}

/// What the steps ask of one format, chosen once by [`Container::of`]: the only `match` on
/// the format for header facts, completeness and stripping.
#[derive(Clone, Copy)]
pub struct Container {
    format: ImageFormat,
    header: HeaderFn,
    check_complete: CheckFn,
    strip: StripFn,
}

/// Reads a header's size facts.
type HeaderFn = fn(&[u8]) -> Result<Header, WalkError>;
/// Checks that the structure is all there.
type CheckFn = fn(&[u8]) -> Result<(), WalkError>;
/// Strips metadata, writing back an EXIF orientation where the format keeps one.
type StripFn = fn(&[u8], u8) -> Result<Vec<u8>, WalkError>;

impl Container {
    /// The walkers of `format`.
    pub fn of(format: ImageFormat) -> Self {
        let (header, check_complete, strip): (HeaderFn, CheckFn, StripFn) = match format {
            ImageFormat::Jpeg => (jpeg::header, jpeg::check_complete, jpeg::strip),
            ImageFormat::Png => (png::header, png::check_complete, png::strip),
            ImageFormat::Webp => (
                // Decoded as RGBA, 8 bits a sample.
                |b| webp::header(b).map(|h| Header::sized(h.size, 4)),
                webp::check_complete,
                webp::strip,
            ),
            ImageFormat::Gif => (gif::header, gif::check_complete, |b, _| gif::strip(b)),
            ImageFormat::Avif | ImageFormat::Heic => {
                (heif::header, heif::check_complete, |b, _| heif::strip(b))
            }
            ImageFormat::Tiff => (
                |b| tiff::header(b).map(|h| Header::sized(h.size, h.pixel_bytes)),
                tiff::check_complete,
                |b, _| tiff::strip(b),
            ),
        };
        Self {
            format,
            header,
            check_complete,
            strip,
        }
    }

    /// The header's size facts; works on a prefix that holds the header.
    ///
    /// # Errors
    /// `Truncated`, `Corrupt` or `UnsupportedFeature` when the header cannot be read.
    pub fn header(&self, bytes: &[u8]) -> Result<Header, PipelineError> {
        (self.header)(bytes).map_err(|e| e.into_pipeline(self.format))
    }

    /// Refuses a file whose structure ends early (decoders would fill it with grey).
    ///
    /// # Errors
    /// `Truncated` or `Corrupt`.
    pub fn check_complete(&self, bytes: &[u8]) -> Result<(), PipelineError> {
        (self.check_complete)(bytes).map_err(|e| e.into_pipeline(self.format))
    }

    /// The file without metadata, with an EXIF block holding only `orientation` (an EXIF
    /// value) where the format keeps orientation in EXIF and it is not 1.
    ///
    /// # Errors
    /// `StripUnsupported` (BigTIFF), `TooManyFrames` (GIF), `Truncated`, `Corrupt`.
    pub fn strip(&self, bytes: &[u8], orientation: u8) -> Result<Vec<u8>, PipelineError> {
        (self.strip)(bytes, orientation).map_err(|e| e.into_pipeline(self.format))
    }
}

/// What a header says about the size of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The stored size (before orientation) that is reported; the canvas for animations.
    pub size: (u32, u32),
    /// Another size the decoder allocates, which must fit the limits too: a GIF's first
    /// frame extent, a HEIF's coded size before its crop.
    pub also_allocated: Option<(u32, u32)>,
    /// Bytes per decoded pixel: channels × bytes per sample, as the decoder produces them.
    pub pixel_bytes: u8,
    /// Bytes produced beyond the first frame: the later frames an animation's stripping
    /// re-codes (one byte per pixel), as far as the bytes in hand show.
    pub other_frames_bytes: u64,
}

impl Header {
    /// A header with one size, the one the decoder allocates, decoded to `pixel_bytes`.
    fn sized(size: (u32, u32), pixel_bytes: u8) -> Self {
        Self {
            size,
            also_allocated: None,
            pixel_bytes,
            other_frames_bytes: 0,
        }
    }

    /// The bytes decoding produces: the larger allocation at `pixel_bytes`, plus the later
    /// frames. What the work budget is checked against.
    pub fn decoded_bytes(&self) -> u64 {
        let area = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
        let pixels = area(self.size).max(self.also_allocated.map_or(0, area));
        pixels
            .saturating_mul(u64::from(self.pixel_bytes))
            .saturating_add(self.other_frames_bytes)
    }
}

/// Most bytes a compressed metadata chunk (a PNG `iCCP`, `zTXt` or `iTXt`) may inflate to:
/// ICC profiles are well under 1 MiB, and a decoder inflates the chunk whole.
pub const MAX_INFLATED_CHUNK: u64 = 8 << 20;

/// Why a walker could not read a container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// The bytes end before the structure the walk needs.
    #[error("the data ends early")]
    Truncated,
    /// The structure is damaged; says what, in words.
    #[error("{0}")]
    Malformed(Cow<'static, str>),
    /// The file uses a coding or variant this pipeline does not read (lossless JPEG, ...).
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    /// Metadata cannot be removed from this variant of the format (BigTIFF), in place or not.
    #[error("metadata cannot be stripped from this file")]
    CannotStrip,
    /// A compressed chunk inflates past [`MAX_INFLATED_CHUNK`].
    #[error("the {0} chunk inflates past its cap")]
    Inflates(&'static str),
    /// An animation has more frames than stripping re-codes.
    #[error("{frames} frames, over the {limit}-frame limit")]
    TooManyFrames {
        /// How many frames the file has.
        frames: usize,
        /// The limit.
        limit: usize,
    },
}

impl WalkError {
    /// A damaged structure, described by a fixed sentence.
    pub fn malformed(what: &'static str) -> Self {
        Self::Malformed(Cow::Borrowed(what))
    }

    /// The one place where a walker's failure becomes a pipeline error.
    pub fn into_pipeline(self, format: ImageFormat) -> PipelineError {
        match self {
            Self::Truncated => PipelineError::Truncated { format },
            Self::Malformed(reason) => PipelineError::Corrupt {
                format,
                reason: reason.into_owned(),
            },
            Self::Unsupported(feature) => PipelineError::UnsupportedFeature { format, feature },
            Self::CannotStrip => PipelineError::StripUnsupported { format },
            Self::Inflates(chunk) => PipelineError::OverBudget {
                what: chunk,
                needed: None,
                budget: MAX_INFLATED_CHUNK,
            },
            Self::TooManyFrames { frames, limit } => PipelineError::TooManyFrames {
                format,
                frames,
                limit,
            },
        }
    }
}

/// A big-endian `u16` at `at`, `None` past the end.
fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// A big-endian `u32` at `at`, `None` past the end.
fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A little-endian `u32` at `at`, `None` past the end.
fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
