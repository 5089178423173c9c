//! WebP: the RIFF header (canvas or bitstream size, where the RIFF ends) and metadata
//! stripping through `img-parts`.

use std::borrow::Cow;

use img_parts::riff::{RiffChunk, RiffContent};
use img_parts::webp::WebP;
use img_parts::{Bytes, ImageEXIF, ImageICC};

use super::{WalkError, exif, icc, le_u32};

/// What the start of a WebP file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Canvas (VP8X) or bitstream (VP8/VP8L) size.
    pub size: (u32, u32),
    /// Where the RIFF file ends according to its size field.
    pub riff_end: usize,
}

/// Reads the RIFF header and the first chunk of a WebP file for its size.
///
/// # Errors
/// `Malformed` when the RIFF/WEBP signature or the first chunk is wrong or cut short.
pub fn header(bytes: &[u8]) -> Result<Header, WalkError> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return Err(WalkError::malformed("bad WebP signature"));
    }
    let cut = WalkError::malformed("file ends inside the WebP header");
    let riff_size = le_u32(bytes, 4).ok_or_else(|| cut.clone())?;
    let riff_end = 8usize.saturating_add(riff_size as usize);
    let chunk = bytes.get(12..16).ok_or_else(|| cut.clone())?;
    let data = bytes.get(20..).ok_or_else(|| cut.clone())?;
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
                return Err(WalkError::malformed("bad VP8 start code"));
            }
            let width = u32::from(u16::from_le_bytes([d[6], d[7]]) & 0x3FFF);
            let height = u32::from(u16::from_le_bytes([d[8], d[9]]) & 0x3FFF);
            (width, height)
        }
        b"VP8L" => {
            let d = data.get(..5).ok_or(cut)?;
            if d[0] != 0x2F {
                return Err(WalkError::malformed("bad VP8L signature"));
            }
            let bits = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
            (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
        }
        _ => return Err(WalkError::malformed("unknown first WebP chunk")),
    };
    Ok(Header { size, riff_end })
}

/// Refuses a WebP whose RIFF size runs past the bytes.
///
/// # Errors
/// `Truncated`, or `Malformed` from the header.
pub fn check_complete(bytes: &[u8]) -> Result<(), WalkError> {
    if header(bytes)?.riff_end > bytes.len() {
        return Err(WalkError::Truncated);
    }
    Ok(())
}

/// WebP chunks kept: bitstreams, alpha, animation and ICC.
fn keep_chunk(id: [u8; 4]) -> bool {
    matches!(
        &id,
        b"VP8X" | b"VP8 " | b"VP8L" | b"ALPH" | b"ANIM" | b"ANMF" | b"ICCP"
    )
}

/// VP8X flag bit for EXIF metadata.
pub const VP8X_EXIF: u8 = 0x08;
/// VP8X flag bit for XMP metadata.
pub const VP8X_XMP: u8 = 0x04;

/// The WebP up to its RIFF size without EXIF/XMP/unknown chunks, with an EXIF chunk holding
/// only `orientation` when it is not 1, and VP8X flags that announce only what is left.
///
/// # Errors
/// `Malformed` when the header is wrong, the RIFF is cut, or img-parts refuses the chunks.
pub fn strip(bytes: &[u8], orientation: u8) -> Result<Vec<u8>, WalkError> {
    let header = header(bytes)?;
    let riff = bytes.get(..header.riff_end).ok_or(WalkError::malformed(
        "the WebP data ends before its RIFF size",
    ))?;
    let mut webp = WebP::from_bytes(Bytes::copy_from_slice(riff))
        .map_err(|e| WalkError::Malformed(Cow::Owned(e.to_string())))?;
    webp.chunks_mut().retain(|chunk| keep_chunk(chunk.id()));
    let profile = webp.icc_profile().and_then(|p| icc::rewrite(&p));
    webp.set_icc_profile(profile.map(Bytes::from));
    if orientation != 1 {
        webp.set_exif(Some(Bytes::from(exif::minimal(orientation))));
    }
    // The VP8X flags still announce the metadata that was removed: say only what is left.
    let has_exif = orientation != 1;
    for chunk in webp.chunks_mut() {
        if chunk.id() != *b"VP8X" {
            continue;
        }
        if let Some(data) = chunk.content().data() {
            let mut data = data.to_vec();
            if let Some(flags) = data.first_mut() {
                *flags &= !(VP8X_EXIF | VP8X_XMP);
                if has_exif {
                    *flags |= VP8X_EXIF;
                }
            }
            *chunk = RiffChunk::new(*b"VP8X", RiffContent::Data(Bytes::from(data)));
        }
    }
    let stripped = webp.encoder().bytes().to_vec();
    // img-parts drops VP8X when only image data is left and rebuilds it from the frame header
    // when EXIF comes back: a frame header that disagrees with the canvas would come out as
    // another size, or as no valid WebP at all.
    if self::header(&stripped).map(|h| h.size).ok() != Some(header.size) {
        return Err(WalkError::malformed(
            "the WebP frame header does not match its canvas",
        ));
    }
    Ok(stripped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = id.to_vec();
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
        out
    }

    /// An extended WebP whose VP8 frame header is damaged (found by fuzzing): stripping it
    /// gave a file img-parts had turned into a simple WebP with an EXIF chunk, which is no
    /// WebP at all.
    #[test]
    fn a_frame_header_that_disagrees_with_the_canvas_is_not_stripped() {
        let mut body = b"WEBP".to_vec();
        body.extend(chunk(b"VP8X", &[0, 0, 0, 0, 99, 0, 0, 99, 0, 0]));
        body.extend(chunk(b"VP8 ", &[0x55; 40]));
        let mut file = b"RIFF".to_vec();
        file.extend((body.len() as u32).to_le_bytes());
        file.extend(body);
        assert_eq!(header(&file).unwrap().size, (100, 100));
        assert!(matches!(strip(&file, 6), Err(WalkError::Malformed(_))));
    }
}
