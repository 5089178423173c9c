//! Metadata removal from classic TIFF, in place.
//!
//! Hand-written because no crate edits a TIFF without re-encoding it: stripping keeps the
//! tags that decoding, colour and display need (a whitelist: geometry, compression,
//! strips/tiles, photometric, colour map, YCbCr and JPEG tables, ICC, orientation) and
//! removes every other entry from each page's IFD: EXIF and GPS sub-IFDs, XMP, IPTC,
//! Photoshop blocks, descriptions, make, model, software, dates, artist, copyright. The data
//! those entries pointed to is zeroed, except where it overlaps data a kept tag uses. Offsets
//! never move, so pixels stay byte for byte.

use std::ops::Range;

use super::super::WalkError;
use super::ifd::{self, Entry, Ifd, Order, value_range};

/// The most IFDs (pages) walked in one file; later pages are left as they are.
pub const MAX_PAGES: usize = 64;

/// Tags whose values are kept: what a decoder needs to show the page the same way.
const KEPT_TAGS: &[u16] = &[
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 274, 277, 278, 279, 280, 281, 282, 283, 284,
    290, 291, 292, 293, 296, 297, 301, 317, 318, 319, 320, 321, 322, 323, 324, 325, 332, 334, 338,
    339, 340, 341, 347, 512, 513, 514, 515, 517, 518, 519, 520, 521, 529, 530, 531, 532, 34675,
];

/// Tags pointing to sub-IFDs whose whole content is metadata (EXIF, GPS, Interoperability).
const METADATA_IFD_TAGS: &[u16] = &[34665, 34853, 40965];

/// Returns the TIFF with metadata tags removed from every page's IFD and their data zeroed.
///
/// # Errors
/// `CannotStrip` for BigTIFF; `Truncated`/`Malformed` when the structure cannot be walked.
pub fn strip(bytes: &[u8]) -> Result<Vec<u8>, WalkError> {
    let (order, first) = ifd::header(bytes).map_err(|e| match e {
        WalkError::Unsupported(_) => WalkError::CannotStrip,
        other => other,
    })?;
    let mut ifds = Vec::new();
    let mut next = first;
    while next != 0 && ifds.len() < MAX_PAGES {
        if ifds.iter().any(|ifd: &Ifd| ifd.offset == next) {
            return Err(WalkError::malformed("the IFD chain loops"));
        }
        let ifd = ifd::read(bytes, order, next)?;
        next = ifd.next as usize;
        ifds.push(ifd);
    }

    // Bytes that kept tags use (pixels, tables, profiles, IFDs): never zeroed.
    let mut protected: Vec<Range<usize>> = Vec::new();
    protected.push(0..8);
    for ifd in &ifds {
        protected.push(ifd.range());
        for entry in ifd.entries.iter().filter(|e| KEPT_TAGS.contains(&e.tag)) {
            protected.extend(value_range(order, entry));
            if let Some(data) = ifd::data_ranges(bytes, order, ifd, entry.tag) {
                protected.extend(data.ranges);
            }
        }
    }

    let mut out = bytes.to_vec();
    let mut blank = Vec::new();
    for ifd in &ifds {
        let kept: Vec<&Entry> = ifd
            .entries
            .iter()
            .filter(|e| KEPT_TAGS.contains(&e.tag))
            .collect();
        for entry in ifd.entries.iter().filter(|e| !KEPT_TAGS.contains(&e.tag)) {
            blank.extend(value_range(order, entry));
            if METADATA_IFD_TAGS.contains(&entry.tag)
                && let Some(offset) = order.scalar(entry)
            {
                metadata_ifd_ranges(bytes, order, offset as usize, 0, &mut blank);
            }
        }
        // Rewrite the IFD in place: kept entries, then the next-IFD offset, then zeros.
        let mut at = ifd.offset;
        let count =
            u16::try_from(kept.len()).map_err(|_| WalkError::malformed("too many IFD entries"))?;
        out[at..at + 2].copy_from_slice(&order.put_u16(count));
        at += 2;
        for entry in &kept {
            out[at..at + 2].copy_from_slice(&order.put_u16(entry.tag));
            out[at + 2..at + 4].copy_from_slice(&order.put_u16(entry.kind));
            out[at + 4..at + 8].copy_from_slice(&order.put_u32(entry.count));
            out[at + 8..at + 12].copy_from_slice(&entry.raw);
            at += 12;
        }
        out[at..at + 4].copy_from_slice(&order.put_u32(ifd.next));
        at += 4;
        out[at..ifd.range().end].fill(0);
    }
    for range in blank {
        let range = range.start.min(out.len())..range.end.min(out.len());
        if protected
            .iter()
            .any(|p| p.start < range.end && range.start < p.end)
        {
            continue;
        }
        out[range].fill(0);
    }
    Ok(out)
}

/// Collects an EXIF/GPS/Interop IFD and everything it points to, for zeroing.
fn metadata_ifd_ranges(
    bytes: &[u8],
    order: Order,
    offset: usize,
    depth: u8,
    out: &mut Vec<Range<usize>>,
) {
    if depth > 2 {
        return;
    }
    let Ok(ifd) = ifd::read(bytes, order, offset) else {
        return;
    };
    out.push(ifd.range());
    for entry in &ifd.entries {
        out.extend(value_range(order, entry));
        if METADATA_IFD_TAGS.contains(&entry.tag)
            && let Some(sub) = order.scalar(entry)
        {
            metadata_ifd_ranges(bytes, order, sub as usize, depth + 1, out);
        }
    }
}
