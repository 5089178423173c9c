//! JPEG: the marker walk (header size and coding, completeness, metadata stripping) and the
//! raw CMYK decode that colour management needs.
//!
//! The walk is hand-written because no crate in the tree walks markers *across* progressive
//! scans: `img-parts` keeps everything after the first SOS as one opaque blob, so EXIF or a
//! comment placed between scans (or data appended after EOI) would survive stripping, and the
//! decoders fill a file cut before EOI with grey instead of failing.

use std::ops::Range;

use super::{End, Header, WalkError, be_u16, exif, icc};

/// One JPEG marker segment between SOI and EOI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The marker code (the byte after `FF`).
    pub marker: u8,
    /// From the marker's `FF` to the end of its payload; for SOS, to the end of the
    /// entropy-coded data that follows it.
    pub range: Range<usize>,
}

impl Segment {
    /// The payload after the length field (empty for standalone markers).
    pub fn payload<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        bytes
            .get(self.range.start + 4..self.range.end)
            .unwrap_or_default()
    }
}

/// What a JPEG walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Width and height from the first frame header (SOFn), if reached.
    pub size: Option<(u32, u32)>,
    /// The first frame header's marker (`0xC0` baseline, `0xC2` progressive, `0xC3` lossless...).
    pub frame_marker: Option<u8>,
    /// Bytes per decoded pixel from the frame header: components × bytes per sample.
    pub pixel_bytes: u8,
    /// The complete segments between SOI and EOI, in file order (empty for `header_only`).
    pub segments: Vec<Segment>,
    /// Where the image ends (just after EOI).
    pub end: End,
}

/// Most stray bytes tolerated between two segments.
const MAX_STRAY_BYTES: usize = 4096;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;

/// Whether a JPEG marker is a start-of-frame carrying the image size.
fn is_sof(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// Whether a JPEG marker stands alone (no length field).
fn is_standalone(marker: u8) -> bool {
    matches!(marker, 0x01 | 0xD0..=0xD7 | SOI | EOI)
}

/// Walks JPEG markers from SOI to EOI, skipping entropy-coded data.
///
/// In entropy-coded data `FF 00` (stuffing) and `FF D0`–`FF D7` (restart markers) are not
/// markers. With `header_only`, the walk stops at the first frame header.
///
/// # Errors
/// `Malformed` when the data is not a JPEG (no SOI) or a segment length is impossible.
pub fn walk(bytes: &[u8], header_only: bool) -> Result<Layout, WalkError> {
    if bytes.len() < 2 || bytes[0] != 0xFF || bytes[1] != SOI {
        return Err(WalkError::malformed("missing start-of-image marker"));
    }
    let mut layout = Layout {
        size: None,
        frame_marker: None,
        pixel_bytes: 0,
        segments: Vec::new(),
        end: End::Missing,
    };
    let mut i = 2;
    loop {
        // Find the next marker, skipping fill bytes (and, leniently, a few stray bytes between
        // segments, as libjpeg does; a long run of them is not a JPEG, and would make a prefix
        // of junk look merely cut short).
        let next = memchr::memchr(0xFF, &bytes[i..]);
        if next.unwrap_or(bytes.len() - i) > MAX_STRAY_BYTES {
            return Err(WalkError::malformed("no JPEG marker where one must be"));
        }
        let Some(ff) = next else {
            return Ok(layout);
        };
        i += ff;
        while i < bytes.len() && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return Ok(layout);
        };
        let start = i - 1;
        i += 1;
        if marker == EOI {
            layout.end = End::At(i);
            return Ok(layout);
        }
        if marker == 0x00 || is_standalone(marker) {
            if marker != 0x00 && !header_only {
                layout.segments.push(Segment {
                    marker,
                    range: start..i,
                });
            }
            continue;
        }
        let Some(length) = be_u16(bytes, i) else {
            return Ok(layout);
        };
        let length = usize::from(length);
        if length < 2 {
            return Err(WalkError::malformed("invalid JPEG segment length"));
        }
        if is_sof(marker) && layout.size.is_none() {
            let Some(header) = bytes.get(i + 2..i + 8) else {
                return Ok(layout);
            };
            // Precision, size, component count, then three bytes a component: a shorter
            // segment would have its size read from whatever follows it.
            let components = usize::from(header[5]);
            if components == 0 || length < 8 + 3 * components {
                return Err(WalkError::malformed(
                    "a frame header shorter than its fields",
                ));
            }
            let height = u32::from(u16::from_be_bytes([header[1], header[2]]));
            let width = u32::from(u16::from_be_bytes([header[3], header[4]]));
            let sample_bytes = if header[0] > 8 { 2 } else { 1 };
            layout.size = Some((width, height));
            layout.pixel_bytes = header[5].max(1).saturating_mul(sample_bytes);
            layout.frame_marker = Some(marker);
            if header_only {
                return Ok(layout);
            }
        }
        i += length;
        if i > bytes.len() {
            return Ok(layout);
        }
        if marker == SOS {
            match skip_entropy_data(bytes, i) {
                Some(next) => i = next,
                None => return Ok(layout),
            }
        }
        if !header_only {
            layout.segments.push(Segment {
                marker,
                range: start..i,
            });
        }
    }
}

/// Returns the offset of the `FF` that starts the next real marker after entropy-coded data.
fn skip_entropy_data(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i += memchr::memchr(0xFF, bytes.get(i..)?)?;
        match *bytes.get(i + 1)? {
            0x00 | 0xD0..=0xD7 => i += 2,
            0xFF => i += 1,
            _ => return Some(i),
        }
    }
}

/// The first frame header's size and decoded pixel size.
///
/// # Errors
/// `Unsupported` for codings the decoder cannot read, `Truncated` when the bytes end before
/// the frame header, `Malformed` from the walk.
pub fn header(bytes: &[u8]) -> Result<Header, WalkError> {
    let layout = walk(bytes, true)?;
    if let Some(feature) = layout.frame_marker.and_then(unsupported_coding) {
        return Err(WalkError::Unsupported(feature));
    }
    let size = layout.size.ok_or(WalkError::Truncated)?;
    Ok(Header::sized(size, layout.pixel_bytes))
}

/// The JPEG codings the decoder cannot read (it reads baseline, extended and progressive
/// Huffman), named for messages; browsers cannot show them either.
fn unsupported_coding(frame_marker: u8) -> Option<&'static str> {
    match frame_marker {
        0xC0..=0xC2 => None,
        0xC3 | 0xC7 | 0xCB | 0xCF => Some("lossless JPEG"),
        0xC9..=0xCA | 0xCD..=0xCE => Some("arithmetic-coded JPEG"),
        _ => Some("hierarchical JPEG"),
    }
}

/// Refuses a JPEG without its end-of-image marker (decoders would fill the rest with grey).
///
/// # Errors
/// `Truncated`, or `Malformed` from the walk.
pub fn check_complete(bytes: &[u8]) -> Result<(), WalkError> {
    if walk(bytes, false)?.end == End::Missing {
        return Err(WalkError::Truncated);
    }
    Ok(())
}

/// Whether a segment is copied as it is: tables, frames, scans and restarts. Application
/// segments are written anew (the few that decoding needs) or dropped, as are comments, the
/// reserved JPGn markers (0xF0–0xFD, which decoders skip and so could carry anything) and a
/// stray SOI.
fn copied(marker: u8) -> bool {
    !matches!(marker, 0xE0..=0xEF | 0xF0..=0xFD | 0xFE | 0xD8)
}

/// The ICC profile split over `APP2 ICC_PROFILE` segments, joined in sequence order (the first
/// piece of each number, as they come); `None` when there is none or its pieces do not add up.
fn icc_profile(layout: &Layout, bytes: &[u8]) -> Option<Vec<u8>> {
    let pieces = layout
        .segments
        .iter()
        .filter(|s| s.marker == 0xE2)
        .filter_map(|s| s.payload(bytes).strip_prefix(ICC_PREFIX))
        .filter_map(|p| Some((*p.first()?, *p.get(1)?, p.get(2..)?)));
    let mut by_number: Vec<Option<&[u8]>> = Vec::new();
    for (sequence, count, data) in pieces {
        if by_number.is_empty() {
            by_number = vec![None; usize::from(count)];
        }
        if let Some(slot @ None) = usize::from(sequence)
            .checked_sub(1)
            .and_then(|i| by_number.get_mut(i))
        {
            *slot = Some(data);
        }
    }
    let pieces: Option<Vec<&[u8]>> = by_number.into_iter().collect();
    pieces.filter(|p| !p.is_empty()).map(|p| p.concat())
}

const ICC_PREFIX: &[u8] = b"ICC_PROFILE\0";
/// The most profile bytes one APP2 segment holds (65,535 less the length field, prefix and
/// sequence bytes).
const ICC_PIECE: usize = 65_519;

/// Appends one segment with `payload`.
fn segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) -> Result<(), WalkError> {
    let length = u16::try_from(payload.len() + 2)
        .map_err(|_| WalkError::malformed("JPEG segment too long"))?;
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Rewrites the JPEG from its segments with only what decoding and colour need: JFIF's fixed
/// fields (no thumbnail), an EXIF block holding only `orientation` when it is not 1, the ICC
/// profile re-written from its parse, Adobe's fixed fields (its colour transform); then the
/// tables, frames and scans as they were. Anything after EOI is dropped.
///
/// # Errors
/// `Malformed` when the walk fails or finds no EOI.
pub fn strip(bytes: &[u8], orientation: u8) -> Result<Vec<u8>, WalkError> {
    let layout = walk(bytes, false)?;
    if layout.end == End::Missing {
        return Err(WalkError::malformed(
            "the JPEG data ends before its end-of-image marker",
        ));
    }
    let first_app = |marker: u8, prefix: &[u8]| {
        layout
            .segments
            .iter()
            .filter(|s| s.marker == marker)
            .map(|s| s.payload(bytes))
            .find(|p| p.starts_with(prefix))
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&[0xFF, 0xD8]);
    // JFIF: identifier, version, units, densities (12 bytes), then a 0×0 thumbnail.
    if let Some(jfif) = first_app(0xE0, b"JFIF\0").and_then(|p| p.get(..12)) {
        segment(&mut out, 0xE0, &[jfif, &[0, 0]].concat())?;
    }
    if orientation != 1 {
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend(exif::minimal(orientation));
        segment(&mut out, 0xE1, &payload)?;
    }
    if let Some(profile) = icc_profile(&layout, bytes).and_then(|p| icc::rewrite(&p)) {
        let pieces = profile.chunks(ICC_PIECE).collect::<Vec<_>>();
        let count =
            u8::try_from(pieces.len()).map_err(|_| WalkError::malformed("ICC profile too long"))?;
        for (sequence, piece) in (1..=count).zip(pieces) {
            segment(
                &mut out,
                0xE2,
                &[ICC_PREFIX, &[sequence, count], piece].concat(),
            )?;
        }
    }
    // Adobe: identifier, version, two flag words, colour transform (12 bytes).
    if let Some(adobe) = first_app(0xEE, b"Adobe").and_then(|p| p.get(..12)) {
        segment(&mut out, 0xEE, adobe)?;
    }
    for segment in layout.segments.iter().filter(|s| copied(s.marker)) {
        out.extend_from_slice(&bytes[segment.range.clone()]);
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    Ok(out)
}

/// Decodes a CMYK or YCCK JPEG to raw 8-bit ink values (0 = no ink), for an ICC conversion.
///
/// Adobe JPEGs store inverted CMYK (255 = no ink) and are flipped back here. `None` when the
/// raw decode fails or the file is not CMYK/YCCK.
pub fn cmyk_ink(bytes: &[u8]) -> Option<(u32, u32, Vec<u8>)> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let mut probe = zune_jpeg::JpegDecoder::new(ZCursor::new(bytes));
    probe.decode_headers().ok()?;
    // zune-jpeg cannot map YCCK to CMYK: take YCCK as stored and convert here.
    let stored = probe.input_colorspace()?;
    if !matches!(stored, ColorSpace::CMYK | ColorSpace::YCCK) {
        return None;
    }
    let options = DecoderOptions::default().jpeg_set_out_colorspace(stored);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let mut ink = decoder.decode().ok()?;
    let (width, height) = decoder.dimensions()?;
    if decoder.output_colorspace()? != stored {
        return None;
    }
    if stored == ColorSpace::YCCK {
        // As libjpeg: CMY = 255 − RGB(YCbCr), K unchanged.
        for pixel in ink.chunks_exact_mut(4) {
            let (y, cb, cr) = (
                f32::from(pixel[0]),
                f32::from(pixel[1]) - 128.0,
                f32::from(pixel[2]) - 128.0,
            );
            let rgb = [
                y + 1.402 * cr,
                y - 0.344_136 * cb - 0.714_136 * cr,
                y + 1.772 * cb,
            ];
            for (sample, value) in pixel.iter_mut().zip(rgb) {
                *sample = 255 - value.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    let adobe = walk(bytes, false)
        .ok()?
        .segments
        .iter()
        .any(|s| s.marker == 0xEE && s.payload(bytes).starts_with(b"Adobe"));
    if adobe {
        ink.iter_mut().for_each(|v| *v = 255 - *v);
    }
    Some((width as u32, height as u32, ink))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny structurally valid JPEG: SOI, APP0, SOF0 (w×h), SOS, entropy data, EOI.
    pub(crate) fn skeleton(width: u16, height: u16, entropy: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        out.extend_from_slice(&[0xFF, 0xE0, 0, 7, b'J', b'F', b'I', b'F', 0]);
        out.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8]);
        out.extend_from_slice(&height.to_be_bytes());
        out.extend_from_slice(&width.to_be_bytes());
        out.extend_from_slice(&[1, 1, 0x11, 0]);
        out.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0]);
        out.extend_from_slice(entropy);
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }

    /// A 6-byte SOF0 (found by fuzzing): its size would be read from the next segment's
    /// bytes, so stripping (which rewrites what follows) changed the reported size.
    #[test]
    fn a_frame_header_shorter_than_its_fields_is_malformed() {
        let mut file = skeleton(8, 8, &[1, 2]);
        let sof = file.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        file[sof + 3] = 6;
        assert!(matches!(walk(&file, true), Err(WalkError::Malformed(_))));
        file[sof + 3] = 10; // one component needs 11
        assert!(matches!(walk(&file, true), Err(WalkError::Malformed(_))));
        file[sof + 3] = 11;
        assert_eq!(walk(&file, true).unwrap().size, Some((8, 8)));
    }

    #[test]
    fn a_long_run_without_markers_is_not_a_jpeg() {
        let mut junk = vec![0xFF, 0xD8];
        junk.extend(vec![0u8; 1 << 20]);
        assert!(matches!(walk(&junk, true), Err(WalkError::Malformed(_))));
        // A few stray bytes before a marker are tolerated, as libjpeg does.
        let mut file = skeleton(8, 8, &[1, 2]);
        file.splice(2..2, [0u8; 16]);
        assert_eq!(walk(&file, true).unwrap().size, Some((8, 8)));
        // A file cut short is still merely cut short.
        let whole = skeleton(8, 8, &[1, 2]);
        assert!(walk(&whole[..whole.len() - 4], false).is_ok());
    }

    #[test]
    fn walk_finds_the_end() {
        let entropy = [
            0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56, 0xFF, 0xFF, 0x00, 0x78,
        ];
        let valid = skeleton(320, 240, &entropy);
        let mut appended_zip = valid.clone();
        appended_zip.extend_from_slice(b"PK\x03\x04\x14\0\0\0\xFF\xD8\xFF\xD9 more");
        let truncated = valid[..valid.len() - 6].to_vec();
        let no_eoi = valid[..valid.len() - 2].to_vec();
        let cut_in_header = valid[..12].to_vec();
        for (name, bytes, want_end) in [
            ("valid", &valid, End::At(valid.len())),
            ("zip appended", &appended_zip, End::At(valid.len())),
            ("cut in scan", &truncated, End::Missing),
            ("no EOI", &no_eoi, End::Missing),
            ("cut in header", &cut_in_header, End::Missing),
        ] {
            let layout = walk(bytes, false);
            assert_eq!(layout.as_ref().map(|l| l.end), Ok(want_end), "{name}");
        }
        assert_eq!(walk(&valid, true).map(|l| l.size), Ok(Some((320, 240))));
        assert_eq!(walk(&truncated, true).map(|l| l.size), Ok(Some((320, 240))));
        assert!(walk(b"\x89PNG", false).is_err());
        assert_eq!(check_complete(&truncated), Err(WalkError::Truncated));
    }

    #[test]
    fn progressive_scans_and_tables_between_scans_are_walked() {
        let mut bytes = skeleton(8, 8, &[1, 2, 3]);
        let eoi = bytes.split_off(bytes.len() - 2);
        // A DHT between scans, then a second scan.
        bytes.extend_from_slice(&[0xFF, 0xC4, 0, 4, 0, 0]);
        bytes.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 9, 9]);
        bytes.extend_from_slice(&eoi);
        assert_eq!(walk(&bytes, false).map(|l| l.end), Ok(End::At(bytes.len())));
    }
}
