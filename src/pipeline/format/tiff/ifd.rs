//! Classic TIFF image file directories, read by hand: byte order, entries, where values and
//! strips lie.
//!
//! The `tiff` crate reads tags well (the decoder uses it for ICC and orientation), but it
//! gives values, not where they are in the file; in-place stripping needs the byte ranges of
//! every entry and of the data it points to, and the header check must tell a file cut
//! before IFD0 (truncated) from a damaged one. BigTIFF is refused here.

use std::ops::Range;

use super::super::WalkError;

/// One IFD entry.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The tag number.
    pub tag: u16,
    /// The field type (3 SHORT, 4 LONG, ...).
    pub kind: u16,
    /// How many values.
    pub count: u32,
    /// The 4 value/offset bytes, as stored.
    pub raw: [u8; 4],
}

/// Reads classic TIFF fields in the file's byte order.
#[derive(Debug, Clone, Copy)]
pub struct Order {
    big: bool,
}

impl Order {
    /// A `u16` at `at`, `None` past the end.
    pub fn u16(self, bytes: &[u8], at: usize) -> Option<u16> {
        let b = bytes.get(at..at.checked_add(2)?)?;
        Some(if self.big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    }

    /// A `u32` at `at`, `None` past the end.
    pub fn u32(self, bytes: &[u8], at: usize) -> Option<u32> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(if self.big {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        })
    }

    /// `value` in the file's byte order.
    pub fn put_u16(self, value: u16) -> [u8; 2] {
        if self.big {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        }
    }

    /// `value` in the file's byte order.
    pub fn put_u32(self, value: u32) -> [u8; 4] {
        if self.big {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        }
    }

    /// The value of a SHORT or LONG entry with count 1.
    pub fn scalar(self, entry: &Entry) -> Option<u32> {
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

/// Where an entry's value lies when it is not inline (in the entry itself).
pub fn value_range(order: Order, entry: &Entry) -> Option<Range<usize>> {
    let len = type_size(entry.kind).checked_mul(entry.count as usize)?;
    if len <= 4 {
        return None;
    }
    let start = order.u32(&entry.raw, 0)? as usize;
    Some(start..start.checked_add(len)?)
}

/// One IFD.
pub struct Ifd {
    /// Where it starts in the file.
    pub offset: usize,
    /// Its entries, in file order.
    pub entries: Vec<Entry>,
    /// The offset of the next IFD (0 for none).
    pub next: u32,
}

impl Ifd {
    /// The entry for `tag`, if any.
    pub fn find(&self, tag: u16) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }

    /// The bytes the IFD itself takes: count, entries, next offset.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + 6 + 12 * self.entries.len()
    }
}

/// Reads the IFD at `offset`.
///
/// # Errors
/// `Truncated` when the bytes end before or inside it.
pub fn read(bytes: &[u8], order: Order, offset: usize) -> Result<Ifd, WalkError> {
    let count = order.u16(bytes, offset).ok_or(WalkError::Truncated)? as usize;
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let at = offset + 2 + 12 * i;
        let field = bytes.get(at..at + 12).ok_or(WalkError::Truncated)?;
        let short = || WalkError::malformed("short IFD entry");
        entries.push(Entry {
            tag: order.u16(field, 0).ok_or_else(short)?,
            kind: order.u16(field, 2).ok_or_else(short)?,
            count: order.u32(field, 4).ok_or_else(short)?,
            raw: [field[8], field[9], field[10], field[11]],
        });
    }
    let next = order
        .u32(bytes, offset + 2 + 12 * count)
        .ok_or(WalkError::Truncated)?;
    Ok(Ifd {
        offset,
        entries,
        next,
    })
}

/// The byte order and the offset of IFD0.
///
/// # Errors
/// `Malformed` for a bad byte-order mark or magic number, `Unsupported` for BigTIFF,
/// `Truncated` when the header is cut.
pub fn header(bytes: &[u8]) -> Result<(Order, usize), WalkError> {
    let order = match bytes.get(..2) {
        Some(b"II") => Order { big: false },
        Some(b"MM") => Order { big: true },
        _ => return Err(WalkError::malformed("bad TIFF byte-order mark")),
    };
    match order.u16(bytes, 2) {
        Some(42) => {}
        Some(43) => return Err(WalkError::Unsupported("BigTIFF")),
        _ => return Err(WalkError::malformed("bad TIFF magic number")),
    }
    let first = order.u32(bytes, 4).ok_or(WalkError::Truncated)? as usize;
    Ok((order, first))
}

/// IFD0.
///
/// # Errors
/// As [`header`] and [`read`].
pub fn first(bytes: &[u8]) -> Result<(Order, Ifd), WalkError> {
    let (order, offset) = header(bytes)?;
    Ok((order, read(bytes, order, offset)?))
}

/// The values of a SHORT or LONG array entry (strip offsets, byte counts); empty when they
/// lie past the end of `bytes`.
fn values(bytes: &[u8], order: Order, entry: &Entry) -> Vec<u64> {
    let base = match value_range(order, entry) {
        Some(range) if range.end <= bytes.len() => &bytes[range],
        Some(_) => return Vec::new(),
        None => &entry.raw[..],
    };
    (0..entry.count as usize)
        .filter_map(|i| match type_size(entry.kind) {
            2 => order.u16(base, i * 2).map(u64::from),
            _ => order.u32(base, i * 4).map(u64::from),
        })
        .collect()
}

/// The data ranges an offsets tag (strips 273, tiles 324, JPEG interchange 513) points at,
/// with its byte-count partner; `None` when either tag is missing. `complete` is false when
/// an array could not be read whole.
pub fn data_ranges(bytes: &[u8], order: Order, ifd: &Ifd, tag: u16) -> Option<DataRanges> {
    let partner = match tag {
        273 => 279,
        324 => 325,
        513 => 514,
        _ => return None,
    };
    let (offsets, counts) = (ifd.find(tag)?, ifd.find(partner)?);
    let (o, c) = (values(bytes, order, offsets), values(bytes, order, counts));
    let complete = o.len() == offsets.count as usize && c.len() == counts.count as usize;
    let ranges = o
        .into_iter()
        .zip(c)
        .map(|(offset, count)| {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            start..start.saturating_add(usize::try_from(count).unwrap_or(usize::MAX))
        })
        .collect();
    Some(DataRanges { ranges, complete })
}

/// Where an IFD's strips or tiles lie.
pub struct DataRanges {
    /// One range per strip or tile, in order.
    pub ranges: Vec<Range<usize>>,
    /// Whether both arrays were read whole.
    pub complete: bool,
}
