//! TIFF structure: the first page's size, completeness, and metadata removal in place.
//!
//! Only classic TIFF (not BigTIFF) is rewritten. Stripping keeps the tags that decoding,
//! colour and display need (a whitelist: geometry, compression, strips/tiles, photometric,
//! colour map, YCbCr and JPEG tables, ICC, orientation) and removes every other entry from
//! each page's IFD: EXIF and GPS sub-IFDs, XMP, IPTC, Photoshop blocks, descriptions, make,
//! model, software, dates, artist, copyright. The data those entries pointed to is zeroed,
//! except where it overlaps data a kept tag uses. Offsets never move, so pixels stay byte for
//! byte. Decoding is left to the `image` crate (first page only).

use std::ops::Range;

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

/// One IFD entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    /// The 4 value/offset bytes, as stored.
    raw: [u8; 4],
}

/// Reads classic TIFF fields in the file's byte order.
#[derive(Debug, Clone, Copy)]
struct Order {
    big: bool,
}

impl Order {
    fn u16(self, bytes: &[u8], at: usize) -> Option<u16> {
        let b = bytes.get(at..at.checked_add(2)?)?;
        Some(if self.big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    }

    fn u32(self, bytes: &[u8], at: usize) -> Option<u32> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(if self.big {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        })
    }

    fn put_u16(self, value: u16) -> [u8; 2] {
        if self.big {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        }
    }

    fn put_u32(self, value: u32) -> [u8; 4] {
        if self.big {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        }
    }

    /// The value of a SHORT or LONG entry with count 1.
    fn scalar(self, entry: &Entry) -> Option<u32> {
        match entry.kind {
            3 => self.u16(&entry.raw, 0).map(u32::from),
            4 | 13 => self.u32(&entry.raw, 0),
            _ => None,
        }
    }
}

/// The byte size of one value of a TIFF field type.
fn type_size(kind: u16) -> usize {
    match kind {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 => 8,
        _ => 1,
    }
}

/// Where an entry's value lies: inline (in the entry) or at an offset in the file.
fn value_range(order: Order, entry: &Entry) -> Option<Range<usize>> {
    let len = type_size(entry.kind).checked_mul(entry.count as usize)?;
    if len <= 4 {
        return None;
    }
    let start = order.u32(&entry.raw, 0)? as usize;
    Some(start..start.checked_add(len)?)
}

/// What a walk of one IFD found.
struct Ifd {
    offset: usize,
    entries: Vec<Entry>,
    next: u32,
}

fn read_ifd(bytes: &[u8], order: Order, offset: usize) -> Result<Ifd, &'static str> {
    let count = order
        .u16(bytes, offset)
        .ok_or("the file ends before an IFD")? as usize;
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let at = offset + 2 + 12 * i;
        let field = bytes
            .get(at..at + 12)
            .ok_or("the file ends inside an IFD")?;
        entries.push(Entry {
            tag: order.u16(field, 0).ok_or("short IFD entry")?,
            kind: order.u16(field, 2).ok_or("short IFD entry")?,
            count: order.u32(field, 4).ok_or("short IFD entry")?,
            raw: [field[8], field[9], field[10], field[11]],
        });
    }
    let next = order
        .u32(bytes, offset + 2 + 12 * count)
        .ok_or("the file ends inside an IFD")?;
    Ok(Ifd {
        offset,
        entries,
        next,
    })
}

fn byte_order(bytes: &[u8]) -> Result<(Order, usize), &'static str> {
    let order = match bytes.get(..2) {
        Some(b"II") => Order { big: false },
        Some(b"MM") => Order { big: true },
        _ => return Err("bad TIFF byte-order mark"),
    };
    match order.u16(bytes, 2) {
        Some(42) => {}
        Some(43) => return Err("BigTIFF is not supported"),
        _ => return Err("bad TIFF magic number"),
    }
    let first = order
        .u32(bytes, 4)
        .ok_or("the file ends inside the TIFF header")? as usize;
    Ok((order, first))
}

/// What the first page's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Width and height of the first page.
    pub size: (u32, u32),
    /// Whether the first IFD's strips or tiles end within the bytes given.
    pub complete: bool,
}

/// Reads the first page's size from IFD0.
///
/// # Errors
/// A description when the header is malformed; "the file ends before an IFD" when the bytes
/// stop before IFD0 (callers map it to `Truncated`).
pub fn header(bytes: &[u8]) -> Result<Header, &'static str> {
    let (order, first) = byte_order(bytes)?;
    let ifd = read_ifd(bytes, order, first)?;
    let find = |tag: u16| ifd.entries.iter().find(|e| e.tag == tag);
    let width = find(256)
        .and_then(|e| order.scalar(e))
        .ok_or("no image width")?;
    let height = find(257)
        .and_then(|e| order.scalar(e))
        .ok_or("no image height")?;
    let mut complete = true;
    for (offsets, counts) in [(273, 279), (324, 325)] {
        let (Some(offsets), Some(counts)) = (find(offsets), find(counts)) else {
            continue;
        };
        let values = |entry: &Entry| -> Vec<u64> {
            let n = entry.count as usize;
            let size = type_size(entry.kind);
            let base = match value_range(order, entry) {
                Some(range) if range.end <= bytes.len() => &bytes[range],
                Some(_) => return Vec::new(),
                None => &entry.raw[..],
            };
            (0..n)
                .filter_map(|i| match size {
                    2 => order.u16(base, i * 2).map(u64::from),
                    _ => order.u32(base, i * 4).map(u64::from),
                })
                .collect()
        };
        let (o, c) = (values(offsets), values(counts));
        if o.len() != offsets.count as usize || c.len() != counts.count as usize {
            complete = false;
        }
        if o.iter()
            .zip(&c)
            .any(|(offset, count)| offset + count > bytes.len() as u64)
        {
            complete = false;
        }
    }
    Ok(Header {
        size: (width, height),
        complete,
    })
}

/// What a CCITT Group 3 decoder needs of the first page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxPage {
    /// Page width and height.
    pub size: (u32, u32),
    /// FillOrder 2: bits are stored least-significant first.
    pub reversed_bits: bool,
    /// Photometric 1 (BlackIsZero) rather than 0 (WhiteIsZero).
    pub black_is_zero: bool,
    /// T4Options bit 0: 2-D coding (not handled by the caller).
    pub two_dimensional: bool,
    /// The strips' bytes, in order.
    pub strips: Vec<Range<usize>>,
}

/// The first page when it is 1-bit CCITT Group 3 (compression 3), which image's TIFF decoder
/// cannot read; `None` otherwise.
pub fn fax3_page(bytes: &[u8]) -> Option<FaxPage> {
    let (order, first) = byte_order(bytes).ok()?;
    let ifd = read_ifd(bytes, order, first).ok()?;
    let value = |tag: u16| {
        ifd.entries
            .iter()
            .find(|e| e.tag == tag)
            .and_then(|e| order.scalar(e))
    };
    if value(259)? != 3 {
        return None;
    }
    let strips = data_ranges(bytes, order, &ifd.entries, 273);
    if strips.iter().any(|r| r.end > bytes.len()) || strips.is_empty() {
        return None;
    }
    Some(FaxPage {
        size: (value(256)?, value(257)?),
        reversed_bits: value(266) == Some(2),
        black_is_zero: value(262) == Some(1),
        two_dimensional: value(292).is_some_and(|v| v & 1 == 1),
        strips,
    })
}

/// The ICC profile (tag 34675) of the first page, if any.
pub fn icc(bytes: &[u8]) -> Option<Vec<u8>> {
    let (order, first) = byte_order(bytes).ok()?;
    let ifd = read_ifd(bytes, order, first).ok()?;
    let entry = ifd.entries.iter().find(|e| e.tag == 34675)?;
    let range = value_range(order, entry)?;
    bytes.get(range).map(<[u8]>::to_vec)
}

/// Returns the TIFF with metadata tags removed from every page's IFD and their data zeroed.
///
/// # Errors
/// A description when the structure cannot be walked (or is BigTIFF).
pub fn strip(bytes: &[u8]) -> Result<Vec<u8>, &'static str> {
    let (order, first) = byte_order(bytes)?;
    let mut ifds = Vec::new();
    let mut next = first;
    while next != 0 && ifds.len() < MAX_PAGES {
        if ifds.iter().any(|ifd: &Ifd| ifd.offset == next) {
            return Err("the IFD chain loops");
        }
        let ifd = read_ifd(bytes, order, next)?;
        next = ifd.next as usize;
        ifds.push(ifd);
    }

    // Bytes that kept tags use (pixels, tables, profiles, IFDs): never zeroed.
    let mut protected: Vec<Range<usize>> = Vec::new();
    protected.push(0..8);
    for ifd in &ifds {
        protected.push(ifd.offset..ifd.offset + 6 + 12 * ifd.entries.len());
        for entry in ifd.entries.iter().filter(|e| KEPT_TAGS.contains(&e.tag)) {
            protected.extend(value_range(order, entry));
            protected.extend(data_ranges(bytes, order, &ifd.entries, entry.tag));
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
        let count = u16::try_from(kept.len()).map_err(|_| "too many IFD entries")?;
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
        let end = ifd.offset + 6 + 12 * ifd.entries.len();
        out[at..end].fill(0);
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

/// The strip/tile data ranges an offsets tag points at (with its byte-count partner).
fn data_ranges(bytes: &[u8], order: Order, entries: &[Entry], tag: u16) -> Vec<Range<usize>> {
    let partner = match tag {
        273 => 279,
        324 => 325,
        513 => 514,
        _ => return Vec::new(),
    };
    let Some(offsets) = entries.iter().find(|e| e.tag == tag) else {
        return Vec::new();
    };
    let Some(counts) = entries.iter().find(|e| e.tag == partner) else {
        return Vec::new();
    };
    let values = |entry: &Entry| -> Vec<usize> {
        let base = match value_range(order, entry) {
            Some(range) if range.end <= bytes.len() => &bytes[range],
            Some(_) => return Vec::new(),
            None => &entry.raw[..],
        };
        (0..entry.count as usize)
            .filter_map(|i| match type_size(entry.kind) {
                2 => order.u16(base, i * 2).map(usize::from),
                _ => order.u32(base, i * 4).map(|v| v as usize),
            })
            .collect()
    };
    values(offsets)
        .into_iter()
        .zip(values(counts))
        .map(|(offset, count)| offset..offset.saturating_add(count))
        .collect()
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
    let Ok(ifd) = read_ifd(bytes, order, offset) else {
        return;
    };
    out.push(offset..offset + 6 + 12 * ifd.entries.len());
    for entry in &ifd.entries {
        out.extend(value_range(order, entry));
        if METADATA_IFD_TAGS.contains(&entry.tag)
            && let Some(sub) = order.scalar(entry)
        {
            metadata_ifd_ranges(bytes, order, sub as usize, depth + 1, out);
        }
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
                complete: true
            })
        );
        assert!(!header(&tiff[..171]).map(|h| h.complete).unwrap_or(true));
        let stripped = strip(&tiff).unwrap();
        assert_eq!(stripped.len(), tiff.len());
        assert!(!stripped.windows(5).any(|w| w == b"<?php"));
        assert!(!stripped.windows(3).any(|w| w == b"abc"));
        assert_eq!(&stripped[170..], &[10, 200]);
        let img = image::load_from_memory_with_format(&stripped, image::ImageFormat::Tiff)
            .unwrap()
            .into_luma8();
        assert_eq!(img.into_raw(), vec![10, 200]);
    }
}
