//! TIFF: the first page's size and completeness, metadata stripping in place (`strip`), and
//! the page decodes `image` cannot do (CCITT Group 3 fax, YCbCr, raw CMYK ink).
//!
//! Tags the decoder needs (ICC profile, orientation) are read with the `tiff` crate. Size and
//! completeness come from the hand-written IFD reader (`ifd`), which works on a prefix, tells a
//! file cut before IFD0 from a damaged one, refuses BigTIFF as the stripping does, and shares
//! its strip-offsets reader with `strip`. Only classic TIFF is stripped; decoding is left to
//! the `image` crate (first page only) except for the helpers here.

mod ifd;
mod strip;

use std::io::Cursor;
use std::ops::Range;

use image::DynamicImage;
use image::metadata::Orientation;

pub use self::strip::{MAX_PAGES, strip};
use super::WalkError;
use crate::pipeline::Limits;

/// What the first page's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Width and height of the first page.
    pub size: (u32, u32),
    /// Whether the first IFD's strips or tiles end within the bytes given.
    pub complete: bool,
    /// Bytes per decoded pixel: samples per pixel × bytes per sample.
    pub pixel_bytes: u8,
}

/// Reads the first page's size from IFD0, and whether its data is all there.
///
/// # Errors
/// `Truncated` when the bytes stop before or inside IFD0, `Unsupported` for BigTIFF,
/// `Malformed` when the header is damaged or has no size.
pub fn header(bytes: &[u8]) -> Result<Header, WalkError> {
    let (order, ifd) = ifd::first(bytes)?;
    let tag = |tag: u16, what: &'static str| {
        ifd.find(tag)
            .and_then(|e| order.scalar(e))
            .ok_or(WalkError::malformed(what))
    };
    let size = (tag(256, "no image width")?, tag(257, "no image height")?);
    let samples = ifd.find(277).and_then(|e| order.scalar(e)).unwrap_or(1);
    // BitsPerSample holds one value per sample, inline or at an offset; the first stands for all.
    let bits = ifd
        .find(258)
        .and_then(|e| match ifd::value_range(order, e) {
            Some(at) => order.u16(bytes, at.start),
            None => order.u16(&e.raw, 0),
        });
    let sample_bytes = u32::from(bits.unwrap_or(1)).div_ceil(8).max(1);
    let pixel_bytes = u8::try_from(samples.max(1).saturating_mul(sample_bytes)).unwrap_or(u8::MAX);
    let complete = [273, 324].into_iter().all(|offsets| {
        ifd::data_ranges(bytes, order, &ifd, offsets)
            .is_none_or(|data| data.complete && data.ranges.iter().all(|r| r.end <= bytes.len()))
    });
    Ok(Header {
        size,
        complete,
        pixel_bytes,
    })
}

/// Refuses a TIFF whose first page's strips or tiles run past the end.
///
/// # Errors
/// `Truncated`, or what [`header`] returns.
pub fn check_complete(bytes: &[u8]) -> Result<(), WalkError> {
    if header(bytes)?.complete {
        Ok(())
    } else {
        Err(WalkError::Truncated)
    }
}

/// What the decoder needs of the first page's tags, read with the `tiff` crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags {
    /// The ICC profile (tag 34675), which image's TIFF decoder does not return.
    pub icc: Option<Vec<u8>>,
    /// The Orientation tag; `NoTransforms` when absent or invalid.
    pub orientation: Orientation,
}

/// Reads the first page's ICC profile and orientation; both absent when the crate cannot
/// open the file.
pub fn tags(bytes: &[u8]) -> Tags {
    let Ok(mut decoder) = ::tiff::decoder::Decoder::new(Cursor::new(bytes)) else {
        return Tags {
            icc: None,
            orientation: Orientation::NoTransforms,
        };
    };
    let icc = decoder
        .find_tag(::tiff::tags::Tag::IccProfile)
        .ok()
        .flatten()
        .and_then(|value| value.into_u8_vec().ok());
    let orientation = decoder
        .find_tag(::tiff::tags::Tag::Orientation)
        .ok()
        .flatten()
        .and_then(|v| v.into_u16().ok())
        .and_then(|v| Orientation::from_exif(v as u8))
        .unwrap_or(Orientation::NoTransforms);
    Tags { icc, orientation }
}

/// What a CCITT Group 3 decoder needs of the first page.
struct FaxPage {
    size: (u32, u32),
    /// FillOrder 2: bits are stored least-significant first.
    reversed_bits: bool,
    /// T4Options bit 0: 2-D coding (not handled).
    two_dimensional: bool,
    /// The strips' bytes, in order.
    strips: Vec<Range<usize>>,
}

/// The first page when it is 1-bit CCITT Group 3 (compression 3); `None` otherwise.
fn fax3_page(bytes: &[u8]) -> Option<FaxPage> {
    let (order, ifd) = ifd::first(bytes).ok()?;
    let value = |tag: u16| ifd.find(tag).and_then(|e| order.scalar(e));
    if value(259)? != 3 {
        return None;
    }
    let strips = ifd::data_ranges(bytes, order, &ifd, 273)?.ranges;
    if strips.iter().any(|r| r.end > bytes.len()) || strips.is_empty() {
        return None;
    }
    Some(FaxPage {
        size: (value(256)?, value(257)?),
        reversed_bits: value(266) == Some(2),
        two_dimensional: value(292).is_some_and(|v| v & 1 == 1),
        strips,
    })
}

/// Decodes a 1-D CCITT Group 3 first page (`valid/tiff_multipage_g3.tif`) with the fax
/// crate, which image's TIFF decoder cannot read; `None` for any other page.
pub fn decode_fax3(bytes: &[u8], limits: &Limits) -> Option<DynamicImage> {
    let page = fax3_page(bytes)?;
    let (width, height) = page.size;
    limits.check(width, height).ok()?;
    if page.two_dimensional {
        return None;
    }
    let line_width = u16::try_from(width).ok()?;
    let data = page
        .strips
        .iter()
        .flat_map(|range| bytes[range.clone()].iter().copied())
        .map(|b| {
            if page.reversed_bits {
                b.reverse_bits()
            } else {
                b
            }
        });
    let mut out = image::GrayImage::new(width, height);
    let mut rows = out.rows_mut();
    fax::decoder::decode_g3(data, |transitions| {
        if let Some(row) = rows.next() {
            for (pixel, colour) in row.zip(fax::decoder::pels(transitions, line_width)) {
                pixel.0[0] = if colour == fax::Color::White { 255 } else { 0 };
            }
        }
    });
    // Rows the data did not reach stay black: a short page is better shown than refused.
    Some(DynamicImage::ImageLuma8(out))
}

/// Decodes a YCbCr (JPEG-compressed) page with the tiff crate, which returns RGB; image
/// cannot map these pages.
pub fn decode_ycbcr(bytes: &[u8], limits: &Limits) -> Option<DynamicImage> {
    let mut decoder = ::tiff::decoder::Decoder::new(Cursor::new(bytes)).ok()?;
    let (width, height) = decoder.dimensions().ok()?;
    limits.check(width, height).ok()?;
    if decoder.colortype().ok()? != ::tiff::ColorType::YCbCr(8) {
        return None;
    }
    match decoder.read_image().ok()? {
        ::tiff::decoder::DecodingResult::U8(rgb) => {
            image::RgbImage::from_raw(width, height, rgb).map(DynamicImage::ImageRgb8)
        }
        _ => None,
    }
}

/// Decodes an 8-bit CMYK page to raw ink values, for an ICC conversion; `None` otherwise.
pub fn cmyk_ink(bytes: &[u8]) -> Option<(u32, u32, Vec<u8>)> {
    let mut decoder = ::tiff::decoder::Decoder::new(Cursor::new(bytes)).ok()?;
    if decoder.colortype().ok()? != ::tiff::ColorType::CMYK(8) {
        return None;
    }
    let (width, height) = decoder.dimensions().ok()?;
    match decoder.read_image().ok()? {
        ::tiff::decoder::DecodingResult::U8(ink) => Some((width, height, ink)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian 2×1 8-bit grey TIFF with an ImageDescription and a Software tag.
    fn sample() -> Vec<u8> {
        let mut t = b"II\x2A\0\x08\0\0\0".to_vec();
        let entries: &[(u16, u16, u32, u32)] = &[
            (256, 3, 1, 2),
            (257, 3, 1, 1),
            (258, 3, 1, 8),
            (259, 3, 1, 1),
            (262, 3, 1, 1),
            (270, 2, 10, 150), // ImageDescription at 150
            (273, 4, 1, 170),  // strip at 170
            (277, 3, 1, 1),
            (278, 3, 1, 1),
            (279, 4, 1, 2),
            (305, 2, 4, 0x0063_6261), // "abc\0" inline
        ];
        t.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, kind, count, value) in entries {
            t.extend_from_slice(&tag.to_le_bytes());
            t.extend_from_slice(&kind.to_le_bytes());
            t.extend_from_slice(&count.to_le_bytes());
            t.extend_from_slice(&value.to_le_bytes());
        }
        t.extend_from_slice(&0u32.to_le_bytes());
        t.resize(150, 0);
        t.extend_from_slice(b"<?php x?>\0");
        t.resize(170, 0);
        t.extend_from_slice(&[10, 200]);
        t
    }

    #[test]
    fn header_and_strip() {
        let tiff = sample();
        assert_eq!(
            header(&tiff),
            Ok(Header {
                size: (2, 1),
                complete: true,
                pixel_bytes: 1,
            })
        );
        assert_eq!(check_complete(&tiff[..171]), Err(WalkError::Truncated));
        assert_eq!(header(&tiff[..20]), Err(WalkError::Truncated));
        let stripped = strip(&tiff).unwrap();
        assert_eq!(stripped.len(), tiff.len());
        assert!(!stripped.windows(5).any(|w| w == b"<?php"));
        assert!(!stripped.windows(3).any(|w| w == b"abc"));
        assert_eq!(&stripped[170..], &[10, 200]);
        let img = image::load_from_memory_with_format(&stripped, image::ImageFormat::Tiff)
            .unwrap()
            .into_luma8();
        assert_eq!(img.into_raw(), vec![10, 200]);
        assert_eq!(tags(&stripped).orientation, Orientation::NoTransforms);
    }

    #[test]
    fn bigtiff_is_refused_by_name() {
        let bigtiff = b"II\x2B\0\x08\0\0\0\x10\0\0\0\0\0\0\0";
        assert_eq!(header(bigtiff), Err(WalkError::Unsupported("BigTIFF")));
        assert_eq!(strip(bigtiff), Err(WalkError::CannotStrip));
    }
}
