//! GIF: the block walk (screen and first-frame size, completeness), the image blocks' parts,
//! and metadata stripping, which re-codes every frame (`recode`).
//!
//! The walk is hand-written because it must work on a prefix, stop at the first image
//! descriptor for the limits, and give byte ranges of blocks for the rewrite; the `gif` crate
//! decodes frames instead of listing them.

pub mod recode;

use std::ops::Range;

use super::{End, Header, WalkError, icc};

/// The most GIF frames re-coded for one original; longer animations are refused rather than
/// kept with frames that were not cleaned.
pub const MAX_FRAMES: usize = 1000;

/// What kind of GIF block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// An extension (`0x21`) with its label: `0xF9` graphic control, `0xFE` comment,
    /// `0xFF` application, `0x01` plain text.
    Extension(u8),
    /// An image: descriptor, optional local colour table, LZW data.
    Image,
}

/// One complete GIF block after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// What it is.
    pub kind: BlockKind,
    /// Its bytes, from the introducer to the block terminator.
    pub range: Range<usize>,
}

/// What a GIF walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The logical screen size.
    pub screen: (u32, u32),
    /// The first image's (left, top, width, height), if its descriptor was reached.
    pub first_frame: Option<(u32, u32, u32, u32)>,
    /// Whether the first image's data is complete.
    pub first_frame_complete: bool,
    /// Signature, logical screen descriptor and global colour table.
    pub header: Range<usize>,
    /// The complete blocks, in file order.
    pub blocks: Vec<Block>,
    /// Where the image ends (just after the trailer).
    pub end: End,
}

/// Walks GIF blocks to the trailer. With `header_only`, stops at the first image descriptor.
///
/// # Errors
/// `Malformed` when the signature is wrong or an unknown block introducer appears.
pub fn walk(bytes: &[u8], header_only: bool) -> Result<Layout, WalkError> {
    if !(bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a")) {
        return Err(WalkError::malformed("bad GIF signature"));
    }
    let screen = bytes
        .get(6..13)
        .ok_or(WalkError::malformed("file ends inside the GIF header"))?;
    let width = u32::from(u16::from_le_bytes([screen[0], screen[1]]));
    let height = u32::from(u16::from_le_bytes([screen[2], screen[3]]));
    let packed = screen[4];
    let mut i = 13 + colour_table_len(packed);
    let mut layout = Layout {
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
                BlockKind::Extension(label)
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
                BlockKind::Image
            }
            _ => return Err(WalkError::malformed("unknown GIF block")),
        };
        let Some(end) = skip_sub_blocks(bytes, i) else {
            break;
        };
        i = end;
        if kind == BlockKind::Image && layout.blocks.iter().all(|b| b.kind != BlockKind::Image) {
            layout.first_frame_complete = true;
        }
        layout.blocks.push(Block {
            kind,
            range: start..end,
        });
    }
    Ok(layout)
}

/// The byte length of a colour table announced by a GIF packed field.
pub fn colour_table_len(packed: u8) -> usize {
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

/// The parts of one image block: descriptor and local colour table, LZW data, frame size.
pub struct Image<'a> {
    /// Descriptor, local colour table and the LZW minimum code size byte.
    pub head: &'a [u8],
    /// The LZW minimum code size.
    pub min_code_size: u8,
    /// The LZW data, its sub-blocks joined.
    pub lzw: Vec<u8>,
    /// The frame's width × height.
    pub pixels: u64,
}

impl<'a> Image<'a> {
    /// Splits an image block (from the walk) into its parts; `None` when it is cut short.
    pub fn parse(block: &'a [u8]) -> Option<Self> {
        let descriptor = block.get(..10)?;
        let width = u64::from(u16::from_le_bytes([descriptor[5], descriptor[6]]));
        let height = u64::from(u16::from_le_bytes([descriptor[7], descriptor[8]]));
        let data_start = 10 + colour_table_len(descriptor[9]) + 1;
        let head = block.get(..data_start)?;
        let min_code_size = *block.get(data_start - 1)?;
        let mut lzw = Vec::with_capacity(block.len());
        let mut i = data_start;
        loop {
            let size = usize::from(*block.get(i)?);
            if size == 0 {
                break;
            }
            lzw.extend_from_slice(block.get(i + 1..i + 1 + size)?);
            i += 1 + size;
        }
        Some(Self {
            head,
            min_code_size,
            lzw,
            pixels: width * height,
        })
    }
}

/// Writes `head`, then `data` (LZW codes, a profile) as sub-blocks of at most 255 bytes, then
/// the terminator.
fn image_block(head: &[u8], lzw: &[u8]) -> Vec<u8> {
    let mut out = head.to_vec();
    for sub in lzw.chunks(255) {
        out.push(sub.len() as u8);
        out.extend_from_slice(sub);
    }
    out.push(0);
    out
}

/// The logical screen size, and the first frame's extent, which must fit the limits too
/// (the decoder allocates both).
///
/// # Errors
/// `Malformed` from the walk.
pub fn header(bytes: &[u8]) -> Result<Header, WalkError> {
    let layout = walk(bytes, false)?;
    // Stripping re-codes every frame: each later one costs a byte per pixel of its extent.
    let other_frames_bytes = layout
        .blocks
        .iter()
        .filter(|b| b.kind == BlockKind::Image)
        .skip(1)
        .filter_map(|b| bytes.get(b.range.start + 5..b.range.start + 9))
        .map(|d| {
            u64::from(u16::from_le_bytes([d[0], d[1]]))
                * u64::from(u16::from_le_bytes([d[2], d[3]]))
        })
        .sum();
    Ok(Header {
        size: layout.screen,
        also_allocated: layout.first_frame.map(|(left, top, width, height)| {
            (left.saturating_add(width), top.saturating_add(height))
        }),
        // Decoded as RGBA, 8 bits a sample.
        pixel_bytes: 4,
        other_frames_bytes,
    })
}

/// Refuses a GIF whose first frame is cut short, or that ends without any image.
///
/// # Errors
/// `Truncated`, or `Malformed`.
pub fn check_complete(bytes: &[u8]) -> Result<(), WalkError> {
    let layout = walk(bytes, false)?;
    if layout.first_frame.is_none() && layout.end != End::Missing {
        return Err(WalkError::malformed("no image in the file"));
    }
    if !layout.first_frame_complete {
        return Err(WalkError::Truncated);
    }
    Ok(())
}

/// Application extensions kept as they are: looping (Netscape/AnimExts). The ICC profile
/// extension is re-written instead.
fn keep_application(id: &[u8]) -> bool {
    matches!(id, b"NETSCAPE2.0" | b"ANIMEXTS1.0")
}

/// The identifier of the application extension that carries an ICC profile.
const ICC_APPLICATION: &[u8] = b"ICCRGBG1012";

/// An application extension's data sub-blocks (after its introducer, label and 11-byte
/// identifier block), joined; `None` when they run past the block.
fn application_data(block: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 14;
    loop {
        let len = usize::from(*block.get(i)?);
        if len == 0 {
            return Some(out);
        }
        out.extend_from_slice(block.get(i + 1..i + 1 + len)?);
        i += 1 + len;
    }
}

/// The GIF without comments, plain text, unknown extensions and trailing bytes, every frame
/// re-coded; frames after a truncation are dropped and the trailer closes the file.
///
/// # Errors
/// `Truncated` when the first frame is cut, `TooManyFrames` over [`MAX_FRAMES`], `Malformed`
/// from the walk.
pub fn strip(bytes: &[u8]) -> Result<Vec<u8>, WalkError> {
    let layout = walk(bytes, false)?;
    if !layout.first_frame_complete {
        return Err(WalkError::Truncated);
    }
    let frames = layout
        .blocks
        .iter()
        .filter(|b| b.kind == BlockKind::Image)
        .count();
    if frames > MAX_FRAMES {
        return Err(WalkError::TooManyFrames {
            frames,
            limit: MAX_FRAMES,
        });
    }
    // Frames are at most the logical screen, which the limits were checked on.
    let max_pixels = u64::from(layout.screen.0) * u64::from(layout.screen.1);
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[layout.header.clone()]);
    for block in &layout.blocks {
        let data = &bytes[block.range.clone()];
        let keep = match block.kind {
            BlockKind::Image => {
                out.extend(recode::clean(data, max_pixels));
                false
            }
            BlockKind::Extension(0xF9) => true, // graphic control: delay, transparency
            BlockKind::Extension(0xFF) if data.get(3..14) == Some(ICC_APPLICATION) => {
                // The profile, re-written from its parse, in fresh sub-blocks.
                if let Some(profile) = application_data(data).and_then(|p| icc::rewrite(&p)) {
                    out.extend(image_block(&data[..14], &profile));
                }
                false
            }
            BlockKind::Extension(0xFF) => data.get(3..14).is_some_and(keep_application),
            BlockKind::Extension(_) => false, // comments, plain text, unknown
        };
        if keep {
            out.extend_from_slice(data);
        }
    }
    out.push(0x3B);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gif_walk_reads_screen_and_first_frame() {
        let mut gif_bytes = b"GIF89a\xFF\xFF\xFF\xFF\x00\x00\x00".to_vec();
        gif_bytes.extend_from_slice(b"\x21\xFE\x03abc\x00");
        gif_bytes
            .extend_from_slice(b"\x2C\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00");
        gif_bytes.push(0x3B);
        let layout = walk(&gif_bytes, false);
        assert_eq!(layout.as_ref().map(|l| l.screen), Ok((65535, 65535)));
        assert_eq!(
            layout.as_ref().map(|l| l.first_frame),
            Ok(Some((0, 0, 1, 1)))
        );
        assert_eq!(layout.as_ref().map(|l| l.blocks.len()), Ok(2));
        assert_eq!(layout.map(|l| l.end), Ok(End::At(gif_bytes.len())));
        let cut = walk(&gif_bytes[..gif_bytes.len() - 4], false);
        assert_eq!(cut.map(|l| l.first_frame_complete), Ok(false));
    }
}
