//! A reader for the ISO-BMFF boxes of HEIF/AVIF files: the primary item's stored size, its
//! rotation and mirroring, and where the metadata items (EXIF, XMP) lie in the file.
//!
//! It reads only the `meta` box (`pitm`, `iinf`, `iloc`, `iprp`), never the coded image data,
//! so `limits` can refuse a 200-megapixel HEIC from its header, on a prefix of the file.
//! Decoding is `heif`'s job; blanking the metadata items is `strip`'s.

use std::ops::Range;

/// The most items or properties read from one file: real files have a few hundred at most
/// (a 12 MP iPhone grid has ~50 tiles); a hostile file could declare millions.
const MAX_ENTRIES: usize = 65_536;

/// What the `meta` box says about the primary image and the metadata items.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeifLayout {
    /// The stored (`ispe`) width and height of the primary item, before `irot`/`imir`.
    pub size: Option<(u32, u32)>,
    /// The size after the primary item's clean aperture (`clap`) crop, when it has one.
    pub clap: Option<(u32, u32)>,
    /// The primary item's `irot`: counter-clockwise rotation in quarter turns (0 to 3).
    pub rotation: u8,
    /// The primary item's `imir` axis, when present: 0 top-bottom flip, 1 left-right flip.
    pub mirror: Option<u8>,
    /// File byte ranges holding the payload of `Exif` items.
    pub exif: Vec<Range<usize>>,
    /// File byte ranges holding the payload of `mime` items (XMP and other text metadata).
    pub mime: Vec<Range<usize>>,
    /// Whether every top-level box and every item extent ends within the bytes given.
    pub complete: bool,
}

impl HeifLayout {
    /// The image's size before rotation: the `clap` crop when present, else `ispe`.
    pub fn image_size(&self) -> Option<(u32, u32)> {
        self.clap.or(self.size)
    }

    /// The displayed size: the image size with width and height swapped by a quarter turn.
    pub fn display_size(&self) -> Option<(u32, u32)> {
        self.image_size().map(|(w, h)| {
            if self.rotation % 2 == 1 {
                (h, w)
            } else {
                (w, h)
            }
        })
    }
}

/// A cursor over big-endian fields that fails instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).ok_or("box field overflows")?;
        let out = self.bytes.get(self.at..end).ok_or("box ends early")?;
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, &'static str> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned field of 0, 4 or 8 bytes (iloc sizes).
    fn sized(&mut self, size: u8) -> Result<u64, &'static str> {
        match size {
            0 => Ok(0),
            4 => Ok(u64::from(self.u32()?)),
            8 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Ok(u64::from_be_bytes(a))
            }
            _ => Err("bad iloc field size"),
        }
    }

    /// Version and flags of a full box.
    fn full_box(&mut self) -> Result<(u8, u32), &'static str> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00FF_FFFF))
    }
}

/// One box: its type, its payload range (cut to the bytes walked) and whether it was cut.
struct BoxInfo {
    kind: [u8; 4],
    payload: Range<usize>,
    cut: bool,
}

/// Lists the boxes in `bytes[range]`; a box running past the end is cut to it.
fn boxes(bytes: &[u8], range: Range<usize>) -> Result<Vec<BoxInfo>, &'static str> {
    let mut out = Vec::new();
    let mut at = range.start;
    let end = range.end.min(bytes.len());
    while at + 8 <= end {
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
            return Err("a box is smaller than its header");
        }
        let box_end = at.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
        out.push(BoxInfo {
            kind,
            payload: (at + header).min(end)..box_end.min(end),
            cut: box_end > end,
        });
        if out.len() > MAX_ENTRIES {
            return Err("too many boxes");
        }
        at = box_end;
    }
    Ok(out)
}

/// One `iloc` entry.
struct Location {
    item: u32,
    construction: u8,
    extents: Vec<(u64, u64)>,
    base: u64,
}

/// Reads the `meta` box of a HEIF/AVIF file (or of a prefix holding it).
///
/// # Errors
/// A description when there is no `meta` box, no primary item, or a box is malformed; "file
/// ends before the meta box" when `bytes` is cut before it (callers map it to `Truncated`).
pub fn layout(bytes: &[u8]) -> Result<HeifLayout, &'static str> {
    let top = boxes(bytes, 0..bytes.len())?;
    if top.iter().any(|b| {
        !b.kind
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b' ')
    }) {
        return Err("a top-level box has a damaged header");
    }
    let meta = top
        .iter()
        .find(|b| &b.kind == b"meta")
        .ok_or("file ends before the meta box")?;
    if meta.payload.end < meta.payload.start + 4 {
        return Err("empty meta box");
    }
    let children = boxes(bytes, meta.payload.start + 4..meta.payload.end)?;
    let child = |kind: &[u8; 4]| children.iter().find(|b| &b.kind == kind);

    let pitm = child(b"pitm").ok_or("no primary item (pitm box)")?;
    let mut r = Reader::new(&bytes[pitm.payload.clone()]);
    let primary = match r.full_box()?.0 {
        0 => u32::from(r.u16()?),
        _ => r.u32()?,
    };

    // Item types: which items hold EXIF or XMP.
    let mut kinds: Vec<(u32, [u8; 4])> = Vec::new();
    if let Some(iinf) = child(b"iinf") {
        let mut r = Reader::new(&bytes[iinf.payload.clone()]);
        let skip = match r.full_box()?.0 {
            0 => 2,
            _ => 4,
        };
        let start = iinf.payload.start + 4 + skip;
        for infe in boxes(bytes, start..iinf.payload.end)? {
            if &infe.kind != b"infe" {
                continue;
            }
            let mut r = Reader::new(&bytes[infe.payload.clone()]);
            let (version, _) = r.full_box()?;
            if version < 2 {
                continue;
            }
            let item = if version == 2 {
                u32::from(r.u16()?)
            } else {
                r.u32()?
            };
            r.u16()?; // protection index
            let t = r.take(4)?;
            kinds.push((item, [t[0], t[1], t[2], t[3]]));
        }
    }

    let mut out = HeifLayout {
        complete: top.iter().all(|b| !b.cut),
        ..HeifLayout::default()
    };
    if let Some(iprp) = child(b"iprp") {
        let props = boxes(bytes, iprp.payload.clone())?;
        let ipco = props.iter().find(|b| &b.kind == b"ipco");
        let properties = match ipco {
            Some(ipco) => boxes(bytes, ipco.payload.clone())?,
            None => Vec::new(),
        };
        for ipma in props.iter().filter(|b| &b.kind == b"ipma") {
            for index in associations(&bytes[ipma.payload.clone()], primary)? {
                let Some(property) = index.checked_sub(1).and_then(|i| properties.get(i)) else {
                    continue;
                };
                let mut r = Reader::new(&bytes[property.payload.clone()]);
                match &property.kind {
                    b"ispe" => {
                        r.full_box()?;
                        out.size = Some((r.u32()?, r.u32()?));
                    }
                    b"irot" => out.rotation = r.u8()? & 0x03,
                    b"clap" => {
                        let (wn, wd, hn, hd) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
                        if wd > 0 && hd > 0 {
                            out.clap = Some(((wn + wd / 2) / wd, (hn + hd / 2) / hd));
                        }
                    }
                    b"imir" => out.mirror = Some(r.u8()? & 0x01),
                    _ => {}
                }
            }
        }
    }

    if let Some(iloc) = child(b"iloc") {
        let idat = child(b"idat").map(|b| b.payload.clone());
        for location in locations(&bytes[iloc.payload.clone()])? {
            let kind = kinds
                .iter()
                .find(|(item, _)| *item == location.item)
                .map(|(_, kind)| kind);
            let origin = match (location.construction, &idat) {
                (0, _) => 0,
                (1, Some(idat)) => idat.start as u64,
                _ => continue, // item-reference construction: no bytes of its own
            };
            for (offset, length) in &location.extents {
                let start = origin.saturating_add(location.base).saturating_add(*offset);
                // A zero length means "to the end of the file".
                let end = if *length == 0 {
                    bytes.len() as u64
                } else {
                    start.saturating_add(*length)
                };
                if end > bytes.len() as u64 {
                    out.complete = false;
                }
                let start = usize::try_from(start)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = usize::try_from(end).unwrap_or(usize::MAX).min(bytes.len());
                let target = match kind {
                    Some(b"Exif") => &mut out.exif,
                    Some(b"mime") => &mut out.mime,
                    _ => continue,
                };
                if start < end {
                    target.push(start..end);
                }
            }
        }
    }
    Ok(out)
}

/// The 1-based property indices associated with `item` in one `ipma` payload.
fn associations(payload: &[u8], item: u32) -> Result<Vec<usize>, &'static str> {
    let mut r = Reader::new(payload);
    let (version, flags) = r.full_box()?;
    let count = r.u32()? as usize;
    if count > MAX_ENTRIES {
        return Err("too many ipma entries");
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
fn locations(payload: &[u8]) -> Result<Vec<Location>, &'static str> {
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
        return Err("too many iloc entries");
    }
    let mut out = Vec::with_capacity(count.min(1024));
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

    fn full_box(kind: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
        let mut payload = vec![version, 0, 0, 0];
        payload.extend_from_slice(body);
        plain_box(kind, &payload)
    }

    fn plain_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn reads_primary_size_rotation_and_exif_location() {
        let mut ispe = 0u32.to_be_bytes().to_vec();
        ispe.extend_from_slice(&16320u32.to_be_bytes());
        ispe.extend_from_slice(&12240u32.to_be_bytes());
        let ipco = [
            plain_box(b"ispe", &ispe),
            plain_box(b"irot", &[3]),
            plain_box(b"imir", &[1]),
        ]
        .concat();
        // ipma: 1 entry, item 1, 3 associations (1, 2, 3).
        let ipma = full_box(b"ipma", 0, &[0, 0, 0, 1, 0, 1, 3, 0x81, 2, 3]);
        let iprp = plain_box(b"iprp", &[plain_box(b"ipco", &ipco), ipma].concat());
        let mut infe_body = 2u16.to_be_bytes().to_vec();
        infe_body.extend_from_slice(&[0, 0]);
        infe_body.extend_from_slice(b"Exif");
        infe_body.push(0);
        let iinf = full_box(
            b"iinf",
            0,
            &[&[0, 1][..], &full_box(b"infe", 2, &infe_body)].concat(),
        );
        // iloc v0: offset 4 bytes, length 4 bytes, no base; item 2 at 100, 20 bytes.
        let iloc = full_box(
            b"iloc",
            0,
            &[
                0x44, 0x00, 0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 100, 0, 0, 0, 20,
            ],
        );
        let pitm = full_box(b"pitm", 0, &[0, 1]);
        let meta = full_box(b"meta", 0, &[pitm, iinf, iloc, iprp].concat());
        let mut file = plain_box(b"ftyp", b"heic\0\0\0\0mif1heic");
        file.extend(meta);
        let pad = 200 - file.len() - 8;
        file.extend(plain_box(b"mdat", &vec![0; pad]));
        let layout = layout(&file).unwrap();
        assert_eq!(layout.size, Some((16320, 12240)));
        assert_eq!(layout.rotation, 3);
        assert_eq!(layout.mirror, Some(1));
        assert_eq!(layout.display_size(), Some((12240, 16320)));
        assert_eq!(layout.exif, vec![100..120]);
        assert!(super::layout(&file[..30]).is_err());
    }
}
