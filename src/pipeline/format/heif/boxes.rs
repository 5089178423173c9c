//! The ISO-BMFF box reader under the HEIF/AVIF facts: boxes, `ipma` associations, `iloc`
//! locations, each read through a cursor that fails instead of panicking.
//!
//! Hand-written because it must read only the `meta` box of a prefix, bounded against
//! hostile counts, and give the byte ranges of items for in-place stripping; libheif decodes
//! but gives no file offsets, and it is optional.

use std::ops::Range;

use super::super::WalkError;

/// The most items or properties read from one file: real files have a few hundred at most
/// (a 12 MP iPhone grid has ~50 tiles); a hostile file could declare millions.
const MAX_ENTRIES: usize = 65_536;

/// A cursor over big-endian fields that fails instead of panicking.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WalkError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(WalkError::malformed("a box field overflows"))?;
        let out = self
            .bytes
            .get(self.at..end)
            .ok_or(WalkError::malformed("a box ends inside a field"))?;
        self.at = end;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, WalkError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, WalkError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, WalkError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned field of 0, 4 or 8 bytes (iloc sizes).
    pub fn sized(&mut self, size: u8) -> Result<u64, WalkError> {
        match size {
            0 => Ok(0),
            4 => Ok(u64::from(self.u32()?)),
            8 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Ok(u64::from_be_bytes(a))
            }
            _ => Err(WalkError::malformed(
                "an iloc field has a size other than 0, 4 or 8",
            )),
        }
    }

    /// Version and flags of a full box.
    pub fn full_box(&mut self) -> Result<(u8, u32), WalkError> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00FF_FFFF))
    }
}

/// One box: its type, its payload range (cut to the bytes walked) and whether it was cut.
pub struct BoxInfo {
    /// The four-letter box type.
    pub kind: [u8; 4],
    /// The payload, cut to the bytes walked.
    pub payload: Range<usize>,
    /// Whether the box runs past the bytes walked.
    pub cut: bool,
}

/// Lists the boxes in `bytes[range]`; a box running past the end is cut to it.
pub fn boxes(bytes: &[u8], range: Range<usize>) -> Result<Vec<BoxInfo>, WalkError> {
    let mut out = Vec::new();
    let mut at = range.start;
    let end = range.end.min(bytes.len());
    // `at` may be past `end` (a box declaring more than is there ends the walk).
    while end.saturating_sub(at) >= 8 {
        let mut r = Reader::new(&bytes[at..end]);
        let size32 = r.u32()?;
        let kind_bytes = r.take(4)?;
        let kind = [kind_bytes[0], kind_bytes[1], kind_bytes[2], kind_bytes[3]];
        let (header, size) = match size32 {
            0 => (8, (end - at) as u64),
            1 => (16, r.sized(8)?),
            n => (8, u64::from(n)),
        };
        if size < header as u64 {
            return Err(WalkError::malformed("a box is smaller than its header"));
        }
        let box_end = at.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
        out.push(BoxInfo {
            kind,
            payload: (at + header).min(end)..box_end.min(end),
            cut: box_end > end,
        });
        if out.len() > MAX_ENTRIES {
            return Err(WalkError::malformed("too many boxes"));
        }
        at = box_end;
    }
    Ok(out)
}

/// One `iloc` entry.
pub struct Location {
    /// The item id.
    pub item: u32,
    /// 0 file offset, 1 `idat` offset, 2 item reference.
    pub construction: u8,
    /// (offset, length) pairs.
    pub extents: Vec<(u64, u64)>,
    /// The base offset.
    pub base: u64,
}

/// The 1-based property indices associated with `item` in one `ipma` payload.
pub fn associations(payload: &[u8], item: u32) -> Result<Vec<usize>, WalkError> {
    let mut r = Reader::new(payload);
    let (version, flags) = r.full_box()?;
    let count = r.u32()? as usize;
    if count > MAX_ENTRIES {
        return Err(WalkError::malformed("too many ipma entries"));
    }
    for _ in 0..count {
        let id = if version < 1 {
            u32::from(r.u16()?)
        } else {
            r.u32()?
        };
        let n = r.u8()?;
        let mut found = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let index = if flags & 1 == 1 {
                usize::from(r.u16()? & 0x7FFF)
            } else {
                usize::from(r.u8()? & 0x7F)
            };
            found.push(index);
        }
        if id == item {
            return Ok(found);
        }
    }
    Ok(Vec::new())
}

/// Every entry of one `iloc` payload.
pub fn locations(payload: &[u8]) -> Result<Vec<Location>, WalkError> {
    let mut r = Reader::new(payload);
    let (version, _) = r.full_box()?;
    let sizes = r.u16()?;
    let offset_size = (sizes >> 12) as u8;
    let length_size = ((sizes >> 8) & 0x0F) as u8;
    let base_size = ((sizes >> 4) & 0x0F) as u8;
    let index_size = if version >= 1 {
        (sizes & 0x0F) as u8
    } else {
        0
    };
    let count = if version < 2 {
        r.u16()? as usize
    } else {
        r.u32()? as usize
    };
    if count > MAX_ENTRIES {
        return Err(WalkError::malformed("too many iloc entries"));
    }
    let mut out = Vec::with_capacity(count.min(1024));
    // Extents whose fields are all zero-sized take no bytes: only this total bounds them.
    let mut extents_left = MAX_ENTRIES;
    for _ in 0..count {
        let item = if version < 2 {
            u32::from(r.u16()?)
        } else {
            r.u32()?
        };
        let construction = if version >= 1 {
            (r.u16()? & 0x0F) as u8
        } else {
            0
        };
        r.u16()?; // data reference index
        let base = r.sized(base_size)?;
        let extent_count = usize::from(r.u16()?);
        extents_left = extents_left
            .checked_sub(extent_count)
            .ok_or(WalkError::malformed("too many iloc extents"))?;
        let mut extents = Vec::with_capacity(extent_count);
        for _ in 0..extent_count {
            r.sized(index_size)?;
            extents.push((r.sized(offset_size)?, r.sized(length_size)?));
        }
        out.push(Location {
            item,
            construction,
            extents,
            base,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A box whose 64-bit size is the largest there is (found by fuzzing: the walk's next
    /// offset overflowed).
    #[test]
    fn a_box_declaring_the_largest_size_ends_the_walk() {
        let mut bytes = vec![0, 0, 0, 1];
        bytes.extend(b"free");
        bytes.extend(u64::MAX.to_be_bytes());
        bytes.extend([0; 16]);
        let listed = boxes(&bytes, 0..bytes.len()).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].cut);
    }

    /// An `iloc` (version 1) whose offset, length and index fields are all zero-sized: each
    /// extent takes no bytes, so a 58 KB file could declare billions of them (found by
    /// fuzzing: 18 s and 2 GiB in `probe`).
    #[test]
    fn zero_sized_extents_are_bounded_by_a_total() {
        let mut payload = vec![1, 0, 0, 0]; // version 1, flags
        payload.extend([0x00, 0x00]); // offset, length, base and index sizes: 0
        payload.extend(u16::MAX.to_be_bytes()); // locations
        for item in 0..u16::MAX {
            payload.extend(item.to_be_bytes());
            payload.extend([0, 0, 0, 0]); // construction, data reference
            payload.extend(u16::MAX.to_be_bytes()); // extents, no bytes each
        }
        assert!(matches!(locations(&payload), Err(WalkError::Malformed(_))));
    }
}
