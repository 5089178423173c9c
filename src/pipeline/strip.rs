//! The stored original: the upload's bytes with metadata removed and pixels untouched.
//!
//! Dropped: EXIF, XMP, IPTC (APP13), comments, text chunks, unknown ancillary data and
//! anything after the end of the image (appended ZIPs, UltraHDR gain maps). Kept: what
//! decoding and colour need (JFIF APP0, Adobe APP14, ICC profiles, PNG palette/transparency/
//! gamma/chromaticity chunks, animation chunks, GIF looping). When the orientation is not 1,
//! a minimal EXIF block holding only the Orientation tag is written back, so the original
//! still displays upright.
//!
//! JPEG and GIF are rewritten from the `container` walkers (for JPEG this also catches
//! metadata between progressive scans, which img-parts leaves inside its entropy data);
//! PNG and WebP go through img-parts. GIF frames are re-coded (`gif_lzw`): same indices, new
//! LZW bytes, so nothing hidden in the coded data survives. TIFF IFDs are cleaned in place
//! (`tiff::strip`). HEIF/AVIF metadata items (`Exif`, `mime`/XMP) are overwritten in place
//! with an empty orientation-1 EXIF block and an empty XMP packet padded with spaces: the
//! item table and every offset stay valid, and orientation lives in `irot`/`imir` anyway.

use image::metadata::Orientation;
use img_parts::png::Png;
use img_parts::riff::{RiffChunk, RiffContent};
use img_parts::webp::WebP;
use img_parts::{Bytes, ImageEXIF};

use super::container::{self, End, GifBlockKind};
use super::{ImageFormat, PipelineError, gif_lzw, isobmff, tiff};

/// The most GIF frames re-coded for one original; longer animations are refused rather than
/// kept with frames that were not cleaned.
pub const MAX_GIF_FRAMES: usize = 1000;

/// Returns `bytes` without metadata; `orientation` is written back when it is not 1.
///
/// # Errors
/// `StripUnsupported` for BigTIFF; `TooManyFrames` for GIFs over `MAX_GIF_FRAMES`;
/// `Corrupt`/`Truncated` when the structure cannot be walked.
pub fn metadata(
    bytes: &[u8],
    format: ImageFormat,
    orientation: Orientation,
) -> Result<Vec<u8>, PipelineError> {
    let orientation = orientation.to_exif();
    let corrupt = |reason: String| PipelineError::Corrupt { format, reason };
    match format {
        ImageFormat::Jpeg => jpeg(bytes, orientation).map_err(|r| corrupt(r.to_owned())),
        ImageFormat::Png => png(bytes, orientation).map_err(corrupt),
        ImageFormat::Webp => webp(bytes, orientation).map_err(corrupt),
        ImageFormat::Gif => gif(bytes),
        ImageFormat::Avif | ImageFormat::Heic => heif(bytes).map_err(|r| corrupt(r.to_owned())),
        ImageFormat::Tiff => match tiff::strip(bytes) {
            Ok(out) => Ok(out),
            Err(reason) if reason.starts_with("BigTIFF") => {
                Err(PipelineError::StripUnsupported { format })
            }
            Err(reason) => Err(corrupt(reason.to_owned())),
        },
    }
}

/// An XMP packet with no properties, written over XMP items.
const EMPTY_XMP: &[u8] = b"<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>";

fn heif(bytes: &[u8]) -> Result<Vec<u8>, &'static str> {
    let layout = isobmff::layout(bytes)?;
    let mut out = bytes.to_vec();
    for range in layout.exif {
        // An EXIF item is a 4-byte offset to the TIFF header, then the TIFF data.
        let mut payload = vec![0u8; 4];
        payload.extend(minimal_exif(1));
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

/// A big-endian TIFF header with one IFD holding only the Orientation tag (0x0112).
pub fn minimal_exif(orientation: u8) -> Vec<u8> {
    let mut tiff = b"MM\0\x2A\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&[0, orientation, 0, 0]); // value, left-justified
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    tiff
}

/// Whether a JPEG segment is needed to decode or colour the image.
fn keep_jpeg_segment(marker: u8, payload: &[u8]) -> bool {
    match marker {
        0xE0 => payload.starts_with(b"JFIF\0"),
        0xE2 => payload.starts_with(b"ICC_PROFILE\0"),
        0xEE => payload.starts_with(b"Adobe"),
        0xE1 | 0xE3..=0xED | 0xEF => false, // EXIF, XMP, MPF, IPTC, vendor data
        0xFE => false,                      // comment
        0xD8 => false,                      // a stray SOI inside the image
        _ => true,                          // tables, frames, scans, restarts
    }
}

fn jpeg(bytes: &[u8], orientation: u8) -> Result<Vec<u8>, &'static str> {
    let layout = container::jpeg(bytes, false)?;
    if layout.end == End::Missing {
        return Err("the JPEG data ends before its end-of-image marker");
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&[0xFF, 0xD8]);
    let mut segments = layout.segments.iter().peekable();
    // JFIF requires its APP0 first; the EXIF block follows it.
    while let Some(segment) = segments.next_if(|s| s.marker == 0xE0) {
        if keep_jpeg_segment(segment.marker, segment.payload(bytes)) {
            out.extend_from_slice(&bytes[segment.range.clone()]);
        }
    }
    if orientation != 1 {
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend(minimal_exif(orientation));
        let length = u16::try_from(payload.len() + 2).map_err(|_| "EXIF block too long")?;
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend(payload);
    }
    for segment in segments {
        if keep_jpeg_segment(segment.marker, segment.payload(bytes)) {
            out.extend_from_slice(&bytes[segment.range.clone()]);
        }
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    Ok(out)
}

/// PNG chunks kept: critical ones, colour, transparency and animation.
fn keep_png_chunk(kind: [u8; 4]) -> bool {
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

fn png(bytes: &[u8], orientation: u8) -> Result<Vec<u8>, String> {
    let layout = container::png(bytes, false)?;
    let End::At(end) = layout.end else {
        return Err("the PNG data ends before its IEND chunk".into());
    };
    let mut png =
        Png::from_bytes(Bytes::copy_from_slice(&bytes[..end])).map_err(|e| e.to_string())?;
    png.chunks_mut()
        .retain(|chunk| keep_png_chunk(chunk.kind()));
    if orientation != 1 {
        png.set_exif(Some(Bytes::from(minimal_exif(orientation))));
    }
    Ok(png.encoder().bytes().to_vec())
}

/// WebP chunks kept: bitstreams, alpha, animation and ICC.
fn keep_webp_chunk(id: [u8; 4]) -> bool {
    matches!(
        &id,
        b"VP8X" | b"VP8 " | b"VP8L" | b"ALPH" | b"ANIM" | b"ANMF" | b"ICCP"
    )
}

/// VP8X flag bits for EXIF and XMP metadata.
const VP8X_EXIF: u8 = 0x08;
const VP8X_XMP: u8 = 0x04;

fn webp(bytes: &[u8], orientation: u8) -> Result<Vec<u8>, String> {
    let header = container::webp(bytes)?;
    let riff = bytes
        .get(..header.riff_end)
        .ok_or("the WebP data ends before its RIFF size")?;
    let mut webp = WebP::from_bytes(Bytes::copy_from_slice(riff)).map_err(|e| e.to_string())?;
    webp.chunks_mut()
        .retain(|chunk| keep_webp_chunk(chunk.id()));
    if orientation != 1 {
        webp.set_exif(Some(Bytes::from(minimal_exif(orientation))));
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
    Ok(webp.encoder().bytes().to_vec())
}

/// Application extensions kept: looping (Netscape/AnimExts) and ICC profiles.
fn keep_gif_application(id: &[u8]) -> bool {
    matches!(id, b"NETSCAPE2.0" | b"ANIMEXTS1.0" | b"ICCRGBG1012")
}

fn gif(bytes: &[u8]) -> Result<Vec<u8>, PipelineError> {
    let format = ImageFormat::Gif;
    let layout = container::gif(bytes, false).map_err(|reason| PipelineError::Corrupt {
        format,
        reason: reason.to_owned(),
    })?;
    if !layout.first_frame_complete {
        return Err(PipelineError::Truncated { format });
    }
    let frames = layout
        .blocks
        .iter()
        .filter(|b| b.kind == GifBlockKind::Image)
        .count();
    if frames > MAX_GIF_FRAMES {
        return Err(PipelineError::TooManyFrames {
            format,
            frames,
            limit: MAX_GIF_FRAMES,
        });
    }
    // Frames are at most the logical screen, which the limits were checked on.
    let max_pixels = u64::from(layout.screen.0) * u64::from(layout.screen.1);
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[layout.header.clone()]);
    for block in &layout.blocks {
        let data = &bytes[block.range.clone()];
        let keep = match block.kind {
            GifBlockKind::Image => {
                match gif_lzw::recompress(data, max_pixels) {
                    Some(recoded) => out.extend(recoded),
                    None => out.extend(gif_image_without_junk(data)),
                }
                false
            }
            GifBlockKind::Extension(0xF9) => true, // graphic control: delay, transparency
            GifBlockKind::Extension(0xFF) => data.get(3..14).is_some_and(keep_gif_application),
            GifBlockKind::Extension(_) => false, // comments, plain text, unknown
        };
        if keep {
            out.extend_from_slice(data);
        }
    }
    // Frames after a truncation are dropped with the rest; the trailer closes the file.
    out.push(0x3B);
    Ok(out)
}

/// A GIF image block with any bytes after its LZW end-of-information code removed.
///
/// Decoders stop at that code, so the pixels are unchanged; data hidden after it (a PHP
/// payload, say) goes. When the end code is not found the block is returned as it is.
fn gif_image_without_junk(block: &[u8]) -> Vec<u8> {
    let packed = block.get(9).copied().unwrap_or(0);
    let table = if packed & 0x80 == 0 {
        0
    } else {
        3 << ((packed & 0x07) + 1)
    };
    let data_start = 10 + table + 1;
    let (Some(head), Some(&min_code_size)) = (block.get(..data_start), block.get(data_start - 1))
    else {
        return block.to_vec();
    };
    // Concatenate the sub-blocks.
    let mut lzw = Vec::with_capacity(block.len());
    let mut i = data_start;
    while let Some(&size) = block.get(i) {
        let Some(sub) = block.get(i + 1..i + 1 + usize::from(size)) else {
            return block.to_vec();
        };
        lzw.extend_from_slice(sub);
        i += 1 + usize::from(size);
        if size == 0 {
            break;
        }
    }
    let Some(used) = lzw_end(&lzw, min_code_size) else {
        return block.to_vec();
    };
    if used >= lzw.len() {
        return block.to_vec();
    }
    let mut out = head.to_vec();
    for sub in lzw[..used].chunks(255) {
        out.push(sub.len() as u8);
        out.extend_from_slice(sub);
    }
    out.push(0);
    out
}

/// The number of bytes of GIF LZW data up to and including the end-of-information code.
///
/// Follows the code-width schedule of giflib/weezl without decoding pixels; `None` when the
/// data ends first or the minimum code size is invalid.
fn lzw_end(data: &[u8], min_code_size: u8) -> Option<usize> {
    if !(1..=11).contains(&min_code_size) {
        return None;
    }
    let clear = 1u32 << min_code_size;
    let end = clear + 1;
    let mut width = u32::from(min_code_size) + 1;
    let mut next = clear + 2;
    let mut has_prev = false;
    let mut bit = 0usize;
    loop {
        if bit + width as usize > data.len() * 8 {
            return None;
        }
        let mut code = 0u32;
        for k in 0..width as usize {
            let b = bit + k;
            code |= u32::from((data[b / 8] >> (b % 8)) & 1) << k;
        }
        bit += width as usize;
        if code == clear {
            width = u32::from(min_code_size) + 1;
            next = clear + 2;
            has_prev = false;
            continue;
        }
        if code == end {
            return Some(bit.div_ceil(8));
        }
        if has_prev && next < 4096 {
            next += 1;
        }
        has_prev = true;
        if next == 1 << width && width < 12 {
            width += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::DynamicImage;
    use std::io::Cursor;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn exif_orientation(bytes: &[u8], format: image::ImageFormat) -> Option<u8> {
        use image::ImageDecoder;
        let reader = image::ImageReader::with_format(Cursor::new(bytes), format);
        let mut decoder = reader.into_decoder().ok()?;
        let exif = decoder.exif_metadata().ok()??;
        Orientation::from_exif_chunk(&exif).map(Orientation::to_exif)
    }

    fn pixels(bytes: &[u8], format: image::ImageFormat) -> Option<Vec<u8>> {
        image::load_from_memory_with_format(bytes, format)
            .ok()
            .map(|i| i.into_rgba8().into_raw())
    }

    /// A real JPEG with EXIF (orientation 6), XMP, a comment and a ZIP appended.
    fn dirty_jpeg() -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 90]));
        let mut clean = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut clean, 90);
        assert!(img.write_with_encoder(encoder).is_ok());
        let mut exif_payload = b"Exif\0\0".to_vec();
        let mut tiff = minimal_exif(6);
        tiff.extend_from_slice(b"GPS secret 51.5N");
        exif_payload.extend(tiff);
        let segment = |marker: u8, payload: &[u8]| {
            let mut s = vec![0xFF, marker];
            s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
            s.extend_from_slice(payload);
            s
        };
        let mut out = clean[..2].to_vec();
        out.extend(segment(0xE1, &exif_payload));
        out.extend(segment(
            0xE1,
            b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta secret/>",
        ));
        out.extend(segment(0xFE, b"<?php system($_GET['c']); ?>"));
        out.extend(segment(0xED, b"Photoshop 3.0\08BIM iptc secret"));
        out.extend_from_slice(&clean[2..]);
        out.extend_from_slice(b"PK\x03\x04 zip payload secret");
        out
    }

    #[test]
    fn jpeg_loses_metadata_keeps_pixels_and_orientation() {
        let input = dirty_jpeg();
        let out = metadata(&input, ImageFormat::Jpeg, Orientation::Rotate90).unwrap_or_default();
        for needle in [&b"secret"[..], b"<?php", b"xmpmeta", b"PK\x03\x04"] {
            assert!(
                !contains(&out, needle),
                "{}",
                String::from_utf8_lossy(needle)
            );
        }
        assert!(out.ends_with(&[0xFF, 0xD9]));
        let fmt = image::ImageFormat::Jpeg;
        assert_eq!(pixels(&out, fmt), pixels(&input, fmt));
        assert!(pixels(&out, fmt).is_some());
        assert_eq!(exif_orientation(&input, fmt), Some(6));
        assert_eq!(exif_orientation(&out, fmt), Some(6));

        let upright =
            metadata(&input, ImageFormat::Jpeg, Orientation::NoTransforms).unwrap_or_default();
        assert!(!contains(&upright, b"Exif\0\0"));
        assert_eq!(pixels(&upright, fmt), pixels(&input, fmt));
    }

    #[test]
    fn png_loses_text_and_exif_keeps_pixels() {
        let img = image::RgbaImage::from_fn(9, 7, |x, y| {
            image::Rgba([x as u8 * 20, y as u8 * 30, 7, 200])
        });
        let mut clean = Vec::new();
        assert!(
            img.write_to(&mut Cursor::new(&mut clean), image::ImageFormat::Png)
                .is_ok()
        );
        let chunk = |kind: &[u8; 4], data: &[u8]| {
            let chunk = img_parts::png::PngChunk::new(*kind, Bytes::copy_from_slice(data));
            chunk.encoder().bytes().to_vec()
        };
        let ihdr_end = 8 + 25;
        let mut input = clean[..ihdr_end].to_vec();
        input.extend(chunk(b"tEXt", b"Comment\0secret"));
        input.extend(chunk(b"eXIf", &minimal_exif(3)));
        input.extend_from_slice(&clean[ihdr_end..]);
        input.extend_from_slice(b"trailing secret");

        let out = metadata(&input, ImageFormat::Png, Orientation::Rotate180).unwrap_or_default();
        assert!(!contains(&out, b"secret"));
        assert!(!contains(&out, b"tEXt"));
        let fmt = image::ImageFormat::Png;
        assert!(pixels(&out, fmt).is_some());
        assert_eq!(pixels(&out, fmt), pixels(&clean, fmt));
        assert_eq!(exif_orientation(&out, fmt), Some(3));
        let upright =
            metadata(&input, ImageFormat::Png, Orientation::NoTransforms).unwrap_or_default();
        assert!(!contains(&upright, b"eXIf"));
    }

    #[test]
    fn gif_loses_comments_and_trailing_bytes() {
        let mut input = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xFF\xFF\xFF".to_vec();
        input.extend_from_slice(b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\0\0\0");
        input.extend_from_slice(b"\x21\xFF\x0BXMP DataXMP\x06secret\0");
        input.extend_from_slice(b"\x21\xFE\x0C<?php x(); ?\0");
        input.extend_from_slice(b"\x21\xF9\x04\x01\0\0\0\0");
        // One pixel; then junk hidden after the LZW end code in the same sub-block.
        input.extend_from_slice(b"\x2C\0\0\0\0\x01\0\x01\0\0\x02\x0F\x44\x01<?php x(); ?>\0");
        input.extend_from_slice(b"\x3B<?php echo 1; ?> secret");
        let out = metadata(&input, ImageFormat::Gif, Orientation::NoTransforms).unwrap_or_default();
        assert!(!contains(&out, b"secret"));
        assert!(!contains(&out, b"<?php"));
        assert!(contains(&out, b"NETSCAPE2.0"));
        assert_eq!(out.last(), Some(&0x3B));
        let fmt = image::ImageFormat::Gif;
        assert!(pixels(&out, fmt).is_some());
        assert_eq!(pixels(&out, fmt), pixels(&input, fmt));
    }

    #[test]
    fn webp_loses_xmp_and_trailing_bytes_keeps_orientation() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(24, 16, |x, y| {
            image::Rgb([x as u8 * 10, y as u8 * 15, 60])
        }));
        let clean = crate::pipeline::encode::webp(&img, 80.0).unwrap_or_default();
        let mut webp = WebP::from_bytes(Bytes::from(clean.clone())).ok();
        if let Some(webp) = webp.as_mut() {
            webp.set_exif(Some(Bytes::from(minimal_exif(8))));
            let xmp = RiffContent::Data(Bytes::from_static(b"<x:xmpmeta secret/>"));
            webp.chunks_mut().push(RiffChunk::new(*b"XMP ", xmp));
        }
        let mut input = webp
            .map(|w| w.encoder().bytes().to_vec())
            .unwrap_or_default();
        input.extend_from_slice(b"trailing secret");

        let out = metadata(&input, ImageFormat::Webp, Orientation::Rotate270).unwrap_or_default();
        assert!(!contains(&out, b"secret"));
        assert!(!contains(&out, b"XMP "));
        let fmt = image::ImageFormat::WebP;
        assert!(pixels(&out, fmt).is_some());
        assert_eq!(pixels(&out, fmt), pixels(&clean, fmt));
        assert_eq!(exif_orientation(&out, fmt), Some(8));
        // VP8X flags: EXIF announced, XMP not.
        let flags = out.get(20).copied().unwrap_or(0);
        assert_eq!(flags & (VP8X_EXIF | VP8X_XMP), VP8X_EXIF);
    }

    #[test]
    fn unsupported_formats_are_an_error_not_a_copy() {
        let bigtiff = b"II\x2B\0\x08\0\0\0\x10\0\0\0\0\0\0\0";
        let result = metadata(bigtiff, ImageFormat::Tiff, Orientation::NoTransforms);
        assert!(matches!(
            result,
            Err(PipelineError::StripUnsupported { .. })
        ));
    }
}
