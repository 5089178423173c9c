//! PNG: the chunk walk (IHDR size, completeness up to IEND) and metadata stripping.
//!
//! The walk finds where the image ends (IEND) and whether it has image data; the rewrite
//! itself goes through `img-parts`, which keeps chunk CRCs right.

use std::borrow::Cow;
use std::ops::Range;

use img_parts::png::Png;
use img_parts::{Bytes, ImageEXIF, ImageICC};

use super::{End, Header, MAX_INFLATED_CHUNK, WalkError, be_u32, exif, icc};

/// One PNG chunk: its type and the byte range of the whole chunk (length, type, data, CRC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The four-letter chunk type.
    pub kind: [u8; 4],
    /// The whole chunk, from its length field to its CRC.
    pub range: Range<usize>,
}

/// What a PNG walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Width and height from IHDR.
    pub size: (u32, u32),
    /// Bytes per decoded pixel from IHDR's colour type and bit depth (a palette decodes to
    /// RGBA).
    pub pixel_bytes: u8,
    /// The complete chunks, in file order.
    pub chunks: Vec<Chunk>,
    /// Where the image ends (just after IEND).
    pub end: End,
}

/// The PNG file signature.
pub const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Walks PNG chunks from the signature to IEND. With `header_only`, stops after IHDR.
///
/// # Errors
/// `Malformed` when the signature or IHDR is missing or damaged.
pub fn walk(bytes: &[u8], header_only: bool) -> Result<Layout, WalkError> {
    if !bytes.starts_with(SIGNATURE) {
        return Err(WalkError::malformed("bad PNG signature"));
    }
    let ihdr = bytes
        .get(8..8 + 8 + 13)
        .ok_or(WalkError::malformed("file ends inside the PNG header"))?;
    if &ihdr[4..8] != b"IHDR" {
        return Err(WalkError::malformed("the first PNG chunk is not IHDR"));
    }
    let width = u32::from_be_bytes([ihdr[8], ihdr[9], ihdr[10], ihdr[11]]);
    let height = u32::from_be_bytes([ihdr[12], ihdr[13], ihdr[14], ihdr[15]]);
    let channels = match ihdr[17] {
        0 => 1,
        4 => 2,
        2 => 3,
        _ => 4,
    };
    let mut layout = Layout {
        size: (width, height),
        pixel_bytes: if ihdr[16] == 16 {
            channels * 2
        } else {
            channels
        },
        chunks: Vec::new(),
        end: End::Missing,
    };
    if header_only {
        return Ok(layout);
    }
    let mut i = 8;
    while let Some(length) = be_u32(bytes, i) {
        if length > 0x7FFF_FFFF {
            return Err(WalkError::malformed("invalid PNG chunk length"));
        }
        let Some(kind) = bytes.get(i + 4..i + 8) else {
            break;
        };
        let kind = [kind[0], kind[1], kind[2], kind[3]];
        let end = i + 12 + length as usize;
        if end > bytes.len() {
            break;
        }
        layout.chunks.push(Chunk {
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

/// IHDR's size and decoded pixel size; and the compressed metadata chunks in hand (`iCCP`,
/// `zTXt`, `iTXt`) inflated up to [`MAX_INFLATED_CHUNK`], since a decoder inflates them whole
/// before the first pixel: a small file must not hide a gigabyte there.
///
/// # Errors
/// `Malformed` from the walk, `Inflates` for a chunk over the cap.
pub fn header(bytes: &[u8]) -> Result<Header, WalkError> {
    let layout = walk(bytes, false)?;
    for chunk in &layout.chunks {
        let data = &bytes[chunk.range.start + 8..chunk.range.end - 4];
        let compressed = match &chunk.kind {
            b"iCCP" => after_nul(data).and_then(|rest| rest.get(1..)),
            b"zTXt" => after_nul(data).and_then(|rest| rest.get(1..)),
            // keyword, NUL, compression flag, method, language NUL, translated keyword NUL.
            b"iTXt" => after_nul(data)
                .filter(|rest| rest.first() == Some(&1))
                .and_then(|rest| rest.get(2..))
                .and_then(after_nul)
                .and_then(after_nul),
            _ => None,
        };
        if let Some(compressed) = compressed {
            let cap = usize::try_from(MAX_INFLATED_CHUNK).unwrap_or(usize::MAX);
            if let Err(e) = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(compressed, cap)
                && e.status == miniz_oxide::inflate::TINFLStatus::HasMoreOutput
            {
                return Err(WalkError::Inflates(chunk_name(chunk.kind)));
            }
        }
    }
    Ok(Header::sized(layout.size, layout.pixel_bytes))
}

/// The bytes after the first NUL (the end of a chunk's keyword).
fn after_nul(data: &[u8]) -> Option<&[u8]> {
    let nul = data.iter().position(|&b| b == 0)?;
    data.get(nul + 1..)
}

fn chunk_name(kind: [u8; 4]) -> &'static str {
    match &kind {
        b"iCCP" => "PNG iCCP",
        b"zTXt" => "PNG zTXt",
        _ => "PNG iTXt",
    }
}

/// Refuses a PNG without IEND (decoders would fill the rest with grey) or without IDAT.
///
/// # Errors
/// `Truncated`, or `Malformed`.
pub fn check_complete(bytes: &[u8]) -> Result<(), WalkError> {
    let layout = walk(bytes, false)?;
    if layout.end == End::Missing {
        return Err(WalkError::Truncated);
    }
    if !layout.chunks.iter().any(|chunk| &chunk.kind == b"IDAT") {
        return Err(WalkError::malformed("no image data (IDAT chunk)"));
    }
    Ok(())
}

/// PNG chunks kept: critical ones, colour, transparency and animation.
fn keep_chunk(kind: [u8; 4]) -> bool {
    let critical = kind[0].is_ascii_uppercase();
    critical
        || matches!(
            &kind,
            b"tRNS"
                | b"gAMA"
                | b"cHRM"
                | b"sRGB"
                | b"iCCP"
                | b"sBIT"
                | b"cICP"
                | b"mDCV"
                | b"cLLI"
                | b"mDCv"
                | b"cLLi"
                | b"acTL"
                | b"fcTL"
                | b"fdAT"
        )
}

/// The PNG up to IEND without ancillary metadata chunks, with an `eXIf` holding only
/// `orientation` when it is not 1.
///
/// # Errors
/// `Malformed` when the walk fails, finds no IEND, or img-parts refuses the chunks.
pub fn strip(bytes: &[u8], orientation: u8) -> Result<Vec<u8>, WalkError> {
    let layout = walk(bytes, false)?;
    let End::At(end) = layout.end else {
        return Err(WalkError::malformed(
            "the PNG data ends before its IEND chunk",
        ));
    };
    let mut png = Png::from_bytes(Bytes::copy_from_slice(&bytes[..end]))
        .map_err(|e| WalkError::Malformed(Cow::Owned(e.to_string())))?;
    png.chunks_mut().retain(|chunk| keep_chunk(chunk.kind()));
    // The header check capped the profile's inflated size before this runs.
    let profile = png.icc_profile().and_then(|p| icc::rewrite(&p));
    png.set_icc_profile(profile.map(Bytes::from));
    if orientation != 1 {
        png.set_exif(Some(Bytes::from(exif::minimal(orientation))));
    }
    Ok(png.encoder().bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_requires_iend() {
        let mut png_bytes = SIGNATURE.to_vec();
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
        let layout = walk(&png_bytes, false);
        assert_eq!(layout.as_ref().map(|l| l.end), Ok(End::At(end)));
        assert_eq!(layout.map(|l| l.size), Ok((3, 2)));
        assert_eq!(
            walk(&png_bytes[..cut], false).map(|l| l.end),
            Ok(End::Missing)
        );
        assert_eq!(check_complete(&png_bytes[..cut]), Err(WalkError::Truncated));
    }
}
