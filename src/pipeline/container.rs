//! Byte-level walkers over container structure: JPEG markers, PNG chunks, GIF blocks, RIFF.
//!
//! They read sizes and boundaries only, never pixel data, so they are fast on any input and
//! work on a prefix of a file. `limits` uses them for header dimensions, `decode` to refuse
//! truncated files (which some decoders silently fill with grey), `strip` to find where an
//! image ends and which blocks it may drop.

use std::ops::Range;

/// How far a walk got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The end marker was found; the image ends at this offset (anything after is not part of it).
    At(usize),
    /// The data ran out before the end marker: a truncated file, or a prefix.
    Missing,
}

/// One JPEG marker segment between SOI and EOI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegSegment {
    /// The marker code (the byte after `FF`).
    pub marker: u8,
    /// From the marker's `FF` to the end of its payload; for SOS, to the end of the
    /// entropy-coded data that follows it.
    pub range: Range<usize>,
}

impl JpegSegment {
    /// The payload after the length field (empty for standalone markers).
    pub fn payload<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        bytes
            .get(self.range.start + 4..self.range.end)
            .unwrap_or_default()
    }
}

/// What a JPEG walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegLayout {
    /// Width and height from the first frame header (SOFn), if reached.
    pub size: Option<(u32, u32)>,
    /// The first frame header's marker (`0xC0` baseline, `0xC2` progressive, `0xC3` lossless...).
    pub frame_marker: Option<u8>,
    /// The complete segments between SOI and EOI, in file order (empty for `header_only`).
    pub segments: Vec<JpegSegment>,
    /// Where the image ends (just after EOI).
    pub end: End,
}

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
/// A description when the data is not a JPEG (no SOI) or a segment length is impossible.
pub fn jpeg(bytes: &[u8], header_only: bool) -> Result<JpegLayout, &'static str> {
    if bytes.len() < 2 || bytes[0] != 0xFF || bytes[1] != SOI {
        return Err("missing start-of-image marker");
    }
    let mut layout = JpegLayout {
        size: None,
        frame_marker: None,
        segments: Vec::new(),
        end: End::Missing,
    };
    let mut i = 2;
    loop {
        // Find the next marker, skipping fill bytes (and, leniently, stray bytes between segments).
        let Some(ff) = bytes[i..].iter().position(|&b| b == 0xFF) else {
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
                layout.segments.push(JpegSegment {
                    marker,
                    range: start..i,
                });
            }
            continue;
        }
        let Some(length) = read_u16_be(bytes, i) else {
            return Ok(layout);
        };
        let length = usize::from(length);
        if length < 2 {
            return Err("invalid JPEG segment length");
        }
        if is_sof(marker) && layout.size.is_none() {
            let Some(header) = bytes.get(i + 2..i + 7) else {
                return Ok(layout);
            };
            let height = u32::from(u16::from_be_bytes([header[1], header[2]]));
            let width = u32::from(u16::from_be_bytes([header[3], header[4]]));
            layout.size = Some((width, height));
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
            layout.segments.push(JpegSegment {
                marker,
                range: start..i,
            });
        }
    }
}

/// Returns the offset of the `FF` that starts the next real marker after entropy-coded data.
fn skip_entropy_data(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i += bytes.get(i..)?.iter().position(|&b| b == 0xFF)?;
        match *bytes.get(i + 1)? {
            0x00 | 0xD0..=0xD7 => i += 2,
            0xFF => i += 1,
            _ => return Some(i),
        }
    }
}

/// One PNG chunk: its type and the byte range of the whole chunk (length, type, data, CRC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PngChunk {
    /// The four-letter chunk type.
    pub kind: [u8; 4],
    /// The whole chunk, from its length field to its CRC.
    pub range: Range<usize>,
}

/// What a PNG walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PngLayout {
    /// Width and height from IHDR.
    pub size: (u32, u32),
    /// The complete chunks, in file order.
    pub chunks: Vec<PngChunk>,
    /// Where the image ends (just after IEND).
    pub end: End,
}

/// The PNG file signature.
pub const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Walks PNG chunks from the signature to IEND. With `header_only`, stops after IHDR.
///
/// # Errors
/// A description when the signature or IHDR is missing or damaged.
pub fn png(bytes: &[u8], header_only: bool) -> Result<PngLayout, &'static str> {
    if !bytes.starts_with(PNG_SIGNATURE) {
        return Err("bad PNG signature");
    }
    let ihdr = bytes
        .get(8..8 + 8 + 13)
        .ok_or("file ends inside the PNG header")?;
    if &ihdr[4..8] != b"IHDR" {
        return Err("the first PNG chunk is not IHDR");
    }
    let width = u32::from_be_bytes([ihdr[8], ihdr[9], ihdr[10], ihdr[11]]);
    let height = u32::from_be_bytes([ihdr[12], ihdr[13], ihdr[14], ihdr[15]]);
    let mut layout = PngLayout {
        size: (width, height),
        chunks: Vec::new(),
        end: End::Missing,
    };
    if header_only {
        return Ok(layout);
    }
    let mut i = 8;
    while let Some(length) = read_u32_be(bytes, i) {
        if length > 0x7FFF_FFFF {
            return Err("invalid PNG chunk length");
        }
        let Some(kind) = bytes.get(i + 4..i + 8) else {
            break;
        };
        let kind = [kind[0], kind[1], kind[2], kind[3]];
        let end = i + 12 + length as usize;
        if end > bytes.len() {
            break;
        }
        layout.chunks.push(PngChunk {
            kind,
            range: i..end,
        });
        i = end;
        if &kind == b"IEND" {
            layout.end = End::At(end);
            break;
        }
    }
    Ok(layout)
}

/// What kind of GIF block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GifBlockKind {
    /// An extension (`0x21`) with its label: `0xF9` graphic control, `0xFE` comment,
    /// `0xFF` application, `0x01` plain text.
    Extension(u8),
    /// An image: descriptor, optional local colour table, LZW data.
    Image,
}

/// One complete GIF block after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GifBlock {
    /// What it is.
    pub kind: GifBlockKind,
    /// Its bytes, from the introducer to the block terminator.
    pub range: Range<usize>,
}

/// What a GIF walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GifLayout {
    /// The logical screen size.
    pub screen: (u32, u32),
    /// The first image's (left, top, width, height), if its descriptor was reached.
    pub first_frame: Option<(u32, u32, u32, u32)>,
    /// Whether the first image's data is complete.
    pub first_frame_complete: bool,
    /// Signature, logical screen descriptor and global colour table.
    pub header: Range<usize>,
    /// The complete blocks, in file order.
    pub blocks: Vec<GifBlock>,
    /// Where the image ends (just after the trailer).
    pub end: End,
}

/// Walks GIF blocks to the trailer. With `header_only`, stops at the first image descriptor.
///
/// # Errors
/// A description when the signature is wrong or an unknown block introducer appears.
pub fn gif(bytes: &[u8], header_only: bool) -> Result<GifLayout, &'static str> {
    if !(bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a")) {
        return Err("bad GIF signature");
    }
    let screen = bytes.get(6..13).ok_or("file ends inside the GIF header")?;
    let width = u32::from(u16::from_le_bytes([screen[0], screen[1]]));
    let height = u32::from(u16::from_le_bytes([screen[2], screen[3]]));
    let packed = screen[4];
    let mut i = 13 + colour_table_len(packed);
    let mut layout = GifLayout {
        screen: (width, height),
        first_frame: None,
        first_frame_complete: false,
        header: 0..i.min(bytes.len()),
        blocks: Vec::new(),
        end: End::Missing,
    };
    while let Some(&introducer) = bytes.get(i) {
        let start = i;
        let kind = match introducer {
            0x3B => {
                layout.end = End::At(i + 1);
                break;
            }
            0x21 => {
                let Some(&label) = bytes.get(i + 1) else {
                    break;
                };
                i += 2;
                GifBlockKind::Extension(label)
            }
            0x2C => {
                let Some(descriptor) = bytes.get(i + 1..i + 10) else {
                    break;
                };
                let field =
                    |at: usize| u32::from(u16::from_le_bytes([descriptor[at], descriptor[at + 1]]));
                if layout.first_frame.is_none() {
                    layout.first_frame = Some((field(0), field(2), field(4), field(6)));
                    if header_only {
                        break;
                    }
                }
                // Descriptor, local colour table, LZW minimum code size.
                i += 10 + colour_table_len(descriptor[8]) + 1;
                GifBlockKind::Image
            }
            _ => return Err("unknown GIF block"),
        };
        let Some(end) = skip_sub_blocks(bytes, i) else {
            break;
        };
        i = end;
        if kind == GifBlockKind::Image
            && layout.blocks.iter().all(|b| b.kind != GifBlockKind::Image)
        {
            layout.first_frame_complete = true;
        }
        layout.blocks.push(GifBlock {
            kind,
            range: start..end,
        });
    }
    Ok(layout)
}

/// The byte length of a colour table announced by a GIF packed field.
fn colour_table_len(packed: u8) -> usize {
    if packed & 0x80 == 0 {
        0
    } else {
        3 << ((packed & 0x07) + 1)
    }
}

/// Skips GIF data sub-blocks; returns the offset after the terminator, `None` when cut short.
fn skip_sub_blocks(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let size = usize::from(*bytes.get(i)?);
        i += 1;
        if size == 0 {
            return Some(i);
        }
        i += size;
        if i > bytes.len() {
            return None;
        }
    }
}

/// What the start of a WebP file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebpHeader {
    /// Canvas (VP8X) or bitstream (VP8/VP8L) size.
    pub size: (u32, u32),
    /// Where the RIFF file ends according to its size field.
    pub riff_end: usize,
}

/// Reads the RIFF header and the first chunk of a WebP file for its size.
///
/// # Errors
/// A description when the RIFF/WEBP signature or the first chunk is wrong or cut short.
pub fn webp(bytes: &[u8]) -> Result<WebpHeader, &'static str> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return Err("bad WebP signature");
    }
    let riff_size = read_u32_le(bytes, 4).ok_or("file ends inside the WebP header")?;
    let riff_end = 8usize.saturating_add(riff_size as usize);
    let chunk = bytes
        .get(12..16)
        .ok_or("file ends inside the WebP header")?;
    let data = bytes.get(20..).ok_or("file ends inside the WebP header")?;
    let cut = "file ends inside the WebP header";
    let size = match chunk {
        b"VP8X" => {
            let d = data.get(..10).ok_or(cut)?;
            let width = 1 + (u32::from(d[4]) | u32::from(d[5]) << 8 | u32::from(d[6]) << 16);
            let height = 1 + (u32::from(d[7]) | u32::from(d[8]) << 8 | u32::from(d[9]) << 16);
            (width, height)
        }
        b"VP8 " => {
            let d = data.get(..10).ok_or(cut)?;
            if d[3..6] != [0x9D, 0x01, 0x2A] {
                return Err("bad VP8 start code");
            }
            let width = u32::from(u16::from_le_bytes([d[6], d[7]]) & 0x3FFF);
            let height = u32::from(u16::from_le_bytes([d[8], d[9]]) & 0x3FFF);
            (width, height)
        }
        b"VP8L" => {
            let d = data.get(..5).ok_or(cut)?;
            if d[0] != 0x2F {
                return Err("bad VP8L signature");
            }
            let bits = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
            (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
        }
        _ => return Err("unknown first WebP chunk"),
    };
    Ok(WebpHeader { size, riff_end })
}

fn read_u16_be(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn read_u32_be(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u32_le(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny structurally valid JPEG: SOI, APP0, SOF0 (w×h), SOS, entropy data, EOI.
    pub(crate) fn jpeg_skeleton(width: u16, height: u16, entropy: &[u8]) -> Vec<u8> {
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

    #[test]
    fn jpeg_walk_finds_the_end() {
        let entropy = [
            0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56, 0xFF, 0xFF, 0x00, 0x78,
        ];
        let valid = jpeg_skeleton(320, 240, &entropy);
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
            let layout = jpeg(bytes, false);
            assert_eq!(layout.as_ref().map(|l| l.end), Ok(want_end), "{name}");
        }
        assert_eq!(jpeg(&valid, true).map(|l| l.size), Ok(Some((320, 240))));
        assert_eq!(jpeg(&truncated, true).map(|l| l.size), Ok(Some((320, 240))));
        assert!(jpeg(b"\x89PNG", false).is_err());
    }

    #[test]
    fn progressive_scans_and_tables_between_scans_are_walked() {
        let mut bytes = jpeg_skeleton(8, 8, &[1, 2, 3]);
        let eoi = bytes.split_off(bytes.len() - 2);
        // A DHT between scans, then a second scan.
        bytes.extend_from_slice(&[0xFF, 0xC4, 0, 4, 0, 0]);
        bytes.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 9, 9]);
        bytes.extend_from_slice(&eoi);
        assert_eq!(jpeg(&bytes, false).map(|l| l.end), Ok(End::At(bytes.len())));
    }

    #[test]
    fn png_walk_requires_iend() {
        let mut png_bytes = PNG_SIGNATURE.to_vec();
        let chunk = |kind: &[u8; 4], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            c.extend_from_slice(&[0, 0, 0, 0]);
            c
        };
        png_bytes.extend(chunk(b"IHDR", &[0, 0, 0, 3, 0, 0, 0, 2, 8, 2, 0, 0, 0]));
        png_bytes.extend(chunk(b"IDAT", &[1, 2, 3, 4]));
        let cut = png_bytes.len() - 3;
        png_bytes.extend(chunk(b"IEND", &[]));
        let end = png_bytes.len();
        png_bytes.extend_from_slice(b"trailing junk");
        let layout = png(&png_bytes, false);
        assert_eq!(layout.as_ref().map(|l| l.end), Ok(End::At(end)));
        assert_eq!(layout.map(|l| l.size), Ok((3, 2)));
        assert_eq!(
            png(&png_bytes[..cut], false).map(|l| l.end),
            Ok(End::Missing)
        );
    }

    #[test]
    fn gif_walk_reads_screen_and_first_frame() {
        let mut gif_bytes = b"GIF89a\xFF\xFF\xFF\xFF\x00\x00\x00".to_vec();
        gif_bytes.extend_from_slice(b"\x21\xFE\x03abc\x00");
        gif_bytes
            .extend_from_slice(b"\x2C\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00");
        gif_bytes.push(0x3B);
        let layout = gif(&gif_bytes, false);
        assert_eq!(layout.as_ref().map(|l| l.screen), Ok((65535, 65535)));
        assert_eq!(
            layout.as_ref().map(|l| l.first_frame),
            Ok(Some((0, 0, 1, 1)))
        );
        assert_eq!(layout.as_ref().map(|l| l.blocks.len()), Ok(2));
        assert_eq!(layout.map(|l| l.end), Ok(End::At(gif_bytes.len())));
        let cut = gif(&gif_bytes[..gif_bytes.len() - 4], false);
        assert_eq!(cut.map(|l| l.first_frame_complete), Ok(false));
    }
}
