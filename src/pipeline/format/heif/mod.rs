//! HEIF/HEIC and AVIF: the brand in `ftyp`, the primary item's facts from the `meta` box
//! (stored size, crop, rotation and mirroring, where the EXIF/XMP items lie), completeness,
//! metadata stripping in place, and decoding with libheif (`decode`, with the `heif` feature).
//!
//! Only the `meta` box is read (`boxes`), never the coded image data, so the limits can refuse
//! a 200-megapixel HEIC from its header, on a prefix of the file. Stripping is hand-written
//! and in place, because no crate rewrites ISO-BMFF: the `Exif` and `mime` (XMP) items are
//! overwritten with an empty orientation-1 EXIF block and an empty XMP packet padded with
//! spaces, so the item table and every offset stay valid; orientation lives in `irot`/`imir`.

mod boxes;
#[cfg(feature = "heif")]
mod decode;

use std::ops::Range;

use self::boxes::{Reader, associations, boxes, locations};
#[cfg(feature = "heif")]
pub use self::decode::decode;
use super::{Header, WalkError, exif};
use crate::pipeline::ImageFormat;

/// What the `meta` box says about the primary image and the metadata items.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
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
    /// The data boxes' payloads (top-level `mdat`, the `meta` box's `idat`): the only bytes
    /// that stripping may blank, so that an item pointing into the boxes themselves cannot
    /// make it damage the file's structure.
    pub data: Vec<Range<usize>>,
}

impl Layout {
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

/// Reads the `meta` box of a HEIF/AVIF file (or of a prefix holding it).
///
/// # Errors
/// `Malformed` when there is no primary item or a box is malformed; `Truncated` when
/// `bytes` end before the `meta` box.
pub fn layout(bytes: &[u8]) -> Result<Layout, WalkError> {
    let top = boxes(bytes, 0..bytes.len())?;
    if top.iter().any(|b| {
        !b.kind
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b' ')
    }) {
        return Err(WalkError::malformed("a top-level box has a damaged header"));
    }
    let meta = top
        .iter()
        .find(|b| &b.kind == b"meta")
        .ok_or(WalkError::Truncated)?;
    if meta.payload.end < meta.payload.start + 4 {
        return Err(WalkError::malformed("empty meta box"));
    }
    let children = boxes(bytes, meta.payload.start + 4..meta.payload.end)?;
    let child = |kind: &[u8; 4]| children.iter().find(|b| &b.kind == kind);

    let pitm = child(b"pitm").ok_or(WalkError::malformed("no primary item (pitm box)"))?;
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

    let mut out = Layout {
        complete: top.iter().all(|b| !b.cut),
        data: top
            .iter()
            .filter(|b| &b.kind == b"mdat")
            .chain(child(b"idat"))
            .map(|b| b.payload.clone())
            .collect(),
        ..Layout::default()
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
                        // A rational size, rounded to the nearest pixel (in u64: the fields
                        // are any u32).
                        let round = |n: u32, d: u32| {
                            u32::try_from((u64::from(n) + u64::from(d) / 2) / u64::from(d)).ok()
                        };
                        if wd > 0 && hd > 0 {
                            out.clap = round(wn, wd).zip(round(hn, hd));
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

/// Reads the `ftyp` box of an ISO-BMFF file: AVIF or HEIC/HEIF by major then compatible brand.
pub fn brand(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let end = size.clamp(16, bytes.len().min(4096));
    let major = &bytes[8..12];
    // Compatible brands follow the 4-byte minor version.
    let compatible = bytes[16..end].chunks_exact(4);
    let classify = |brand: &[u8]| match brand {
        b"avif" | b"avis" => Some(ImageFormat::Avif),
        b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"hevm" | b"hevs" => {
            Some(ImageFormat::Heic)
        }
        _ => None,
    };
    if let Some(format) = classify(major) {
        return Some(format);
    }
    let mut generic_heif = matches!(major, b"mif1" | b"msf1" | b"mif2");
    for brand in compatible {
        if let Some(format) = classify(brand) {
            return Some(format);
        }
        generic_heif |= matches!(brand, b"mif1" | b"msf1" | b"mif2");
    }
    generic_heif.then_some(ImageFormat::Heic)
}

/// The image size (after `clap`) reported, and the coded size (`ispe`), which a decoder
/// allocates and which must fit the limits too.
///
/// # Errors
/// As [`layout`], and `Malformed` when the primary item has no `ispe`.
pub fn header(bytes: &[u8]) -> Result<Header, WalkError> {
    let layout = layout(bytes)?;
    let coded = layout.size.ok_or(WalkError::malformed(
        "the primary image has no size (ispe) property",
    ))?;
    Ok(Header {
        size: layout.image_size().unwrap_or(coded),
        also_allocated: Some(coded),
        // libheif decodes to interleaved RGBA, 8 bits a sample for the usual 8-bit images.
        pixel_bytes: 4,
        other_frames_bytes: 0,
    })
}

/// Refuses a file whose boxes or item data run past the end.
///
/// # Errors
/// `Truncated`, or what [`layout`] returns.
pub fn check_complete(bytes: &[u8]) -> Result<(), WalkError> {
    if layout(bytes)?.complete {
        Ok(())
    } else {
        Err(WalkError::Truncated)
    }
}

/// An XMP packet with no properties, written over XMP items.
const EMPTY_XMP: &[u8] = b"<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>";

/// The file with its `Exif` and `mime` items blanked in place.
///
/// # Errors
/// What [`layout`] returns, and `Malformed` when a metadata item's bytes are not inside a
/// data box (`mdat`, `idat`).
pub fn strip(bytes: &[u8]) -> Result<Vec<u8>, WalkError> {
    let layout = layout(bytes)?;
    let in_data = |range: &Range<usize>| {
        layout
            .data
            .iter()
            .any(|data| data.start <= range.start && range.end <= data.end)
    };
    if !layout.exif.iter().chain(&layout.mime).all(in_data) {
        return Err(WalkError::malformed(
            "a metadata item lies outside the file's data boxes",
        ));
    }
    let mut out = bytes.to_vec();
    for range in layout.exif {
        // An EXIF item is a 4-byte offset to the TIFF header, then the TIFF data.
        let mut payload = vec![0u8; 4];
        payload.extend(exif::minimal(1));
        let target = &mut out[range];
        target.fill(0);
        if payload.len() <= target.len() {
            target[..payload.len()].copy_from_slice(&payload);
        }
    }
    for range in layout.mime {
        let target = &mut out[range];
        target.fill(b' ');
        if EMPTY_XMP.len() <= target.len() {
            target[..EMPTY_XMP.len()].copy_from_slice(EMPTY_XMP);
        }
    }
    Ok(out)
}

/// Without the `heif` feature, HEIF and AVIF are refused in words.
///
/// # Errors
/// Always `UnsupportedFeature`.
#[cfg(not(feature = "heif"))]
pub fn decode(
    _bytes: &[u8],
    format: ImageFormat,
    _limits: &crate::pipeline::Limits,
) -> Result<image::DynamicImage, crate::pipeline::PipelineError> {
    Err(crate::pipeline::PipelineError::UnsupportedFeature {
        format,
        feature: match format {
            ImageFormat::Avif => "AVIF in this build (it needs the `heif` feature)",
            _ => "HEIF in this build (it needs the `heif` feature)",
        },
    })
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
        // iloc v0: offset 4 bytes, length 4 bytes, no base; item 2 at 300, 20 bytes (in mdat).
        let iloc = full_box(
            b"iloc",
            0,
            &[0x44, 0x00, 0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 1, 44, 0, 0, 0, 20],
        );
        let pitm = full_box(b"pitm", 0, &[0, 1]);
        let meta = full_box(b"meta", 0, &[pitm, iinf, iloc, iprp].concat());
        let mut file = plain_box(b"ftyp", b"heic\0\0\0\0mif1heic");
        file.extend(meta);
        let pad = 400 - file.len() - 8;
        file.extend(plain_box(b"mdat", &vec![0; pad]));
        let layout = layout(&file).unwrap();
        assert_eq!(layout.size, Some((16320, 12240)));
        assert_eq!(layout.rotation, 3);
        assert_eq!(layout.mirror, Some(1));
        assert_eq!(layout.display_size(), Some((12240, 16320)));
        assert_eq!(layout.exif, vec![300..320]);
        assert!(super::layout(&file[..30]).is_err());
        assert!(strip(&file).is_ok());

        // The same item pointing at the start of the file, as a fuzzed file did: blanking it
        // would wipe the ftyp box, so the file is refused instead.
        let at = file
            .windows(8)
            .position(|w| w == [0, 0, 1, 44, 0, 0, 0, 20])
            .unwrap();
        file[at + 2] = 0;
        file[at + 3] = 0;
        assert!(matches!(strip(&file), Err(WalkError::Malformed(_))));
    }
}
