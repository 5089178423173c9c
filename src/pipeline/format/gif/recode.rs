//! Re-codes the LZW data of a GIF image block, so no byte of the upload survives in it.
//!
//! `valid/gif_hostile_php_in_comment.gif` hides `<?php` inside its LZW stream, before the end
//! code, where decoders read it as pixel codes. Decoding the stream to palette indices and
//! encoding them again (same indices) keeps every pixel and every frame as it was while the
//! coded bytes become our own. Re-coding with the same code size is not enough: that file's
//! payload was crafted against the standard greedy LZW encoder, which reproduces it byte for
//! byte. So the indices are coded with a minimum code size one larger than the original's
//! (valid GIF, ~1 bit more per code), which shifts every code, and the result is checked for
//! script openers (`<?`, `<%`, `<script`), trying other sizes if needed. Decoding and encoding
//! are `weezl`'s.
//!
//! Frames weezl cannot decode (bad codes, a code size GIF decoders accept but weezl's encoder
//! does not, a frame larger than the screen) are kept, cut after their end-of-information
//! code. Finding that code stays hand-written ([`lzw_end`]): weezl reads up to 8 bytes ahead
//! into its bit buffer and does not say where the end code ended, and finding it by decoding
//! would cost work in proportion to the pixels of a frame the limits never saw; the code-width
//! schedule alone, without a dictionary, is linear in the coded bytes.

use weezl::{BitOrder, LzwStatus, decode::Decoder, encode::Encoder};

use super::{Image, image_block};

/// One image block (descriptor, local colour table, LZW data, terminator) with nothing of
/// the upload left in its coded data: re-coded, else cut after its end code, else as it is.
///
/// `max_pixels` bounds the indices decoded (a frame cannot be larger than the logical screen
/// the limits were checked on).
pub fn clean(block: &[u8], max_pixels: u64) -> Vec<u8> {
    let Some(image) = Image::parse(block) else {
        return block.to_vec();
    };
    recompress(&image, max_pixels)
        .or_else(|| without_junk(&image))
        .unwrap_or_else(|| block.to_vec())
}

/// Re-encodes one image's indices with weezl; `None` when it cannot be done with the same
/// result: bad minimum code size, LZW errors, a frame over `max_pixels`.
fn recompress(image: &Image<'_>, max_pixels: u64) -> Option<Vec<u8>> {
    if image.pixels > max_pixels {
        return None;
    }
    // weezl encodes code sizes 2 to 12; GIF allows up to 11 (12-bit codes).
    if !(2..=11).contains(&image.min_code_size) {
        return None;
    }
    let indices = decode_bounded(&image.lzw, image.min_code_size, image.pixels as usize)?;
    let (size, coded) = (image.min_code_size + 1..=11)
        .chain([image.min_code_size])
        .filter_map(|size| {
            let coded = Encoder::new(BitOrder::Lsb, size).encode(&indices).ok()?;
            Some((size, coded))
        })
        .find(|(_, coded)| !has_script_opener(coded))?;
    let mut out = image_block(image.head, &coded);
    // The minimum code size is the last byte of the head.
    out[image.head.len() - 1] = size;
    Some(out)
}

/// Whether coded bytes contain something a server might execute if misconfigured.
fn has_script_opener(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"<?" || w == b"<%")
        || bytes.windows(7).any(|w| w.eq_ignore_ascii_case(b"<script"))
}

/// Decodes at most `limit` indices; the rest of the stream (which decoders ignore) is dropped.
fn decode_bounded(lzw: &[u8], min_code_size: u8, limit: usize) -> Option<Vec<u8>> {
    let mut decoder = Decoder::new(BitOrder::Lsb, min_code_size);
    let mut out = Vec::with_capacity(limit.min(1 << 24));
    let mut buffer = vec![0u8; 1 << 16];
    let mut input = lzw;
    while out.len() < limit {
        let result = decoder.decode_bytes(input, &mut buffer);
        input = &input[result.consumed_in..];
        let take = result.consumed_out.min(limit - out.len());
        out.extend_from_slice(&buffer[..take]);
        match result.status {
            Ok(LzwStatus::Done) => break,
            Ok(LzwStatus::NoProgress) if result.consumed_out == 0 => break,
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    Some(out)
}

/// The image with any bytes after its LZW end-of-information code removed.
///
/// Decoders stop at that code, so the pixels are unchanged; data hidden after it (a PHP
/// payload, say) goes. `None` when the end code is not found or nothing follows it.
fn without_junk(image: &Image<'_>) -> Option<Vec<u8>> {
    let used = lzw_end(&image.lzw, image.min_code_size)?;
    (used < image.lzw.len()).then(|| image_block(image.head, &image.lzw[..used]))
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

    #[test]
    fn indices_survive_and_hidden_bytes_do_not() {
        let indices: Vec<u8> = (0..64u32).map(|i| (i * 7 % 4) as u8).collect();
        let coded = Encoder::new(BitOrder::Lsb, 2).encode(&indices).unwrap();
        let mut block = vec![0x2C, 0, 0, 0, 0, 8, 0, 8, 0, 0, 2];
        let mut data = coded.clone();
        data.extend_from_slice(b"<?php junk ?>");
        block.push(data.len() as u8);
        block.extend_from_slice(&data);
        block.push(0);
        let out = clean(&block, 1 << 20);
        assert!(!out.windows(5).any(|w| w == b"<?php"));
        assert_eq!(out[10], 3, "one more than the original code size");
        let lzw = &out[12..out.len() - 1];
        let decoded = Decoder::new(BitOrder::Lsb, 3).decode(lzw).unwrap();
        assert_eq!(decoded, indices);
    }

    #[test]
    fn frames_over_the_screen_are_cut_after_their_end_code() {
        let indices = [0u8, 1, 2, 3];
        let coded = Encoder::new(BitOrder::Lsb, 2).encode(&indices).unwrap();
        let mut block = vec![0x2C, 0, 0, 0, 0, 2, 0, 2, 0, 0, 2];
        let mut data = coded.clone();
        data.extend_from_slice(b"<?php junk ?>");
        block.push(data.len() as u8);
        block.extend_from_slice(&data);
        block.push(0);
        // A 1-pixel screen: the 2×2 frame is not re-coded, only cut.
        let out = clean(&block, 1);
        assert!(!out.windows(5).any(|w| w == b"<?php"));
        assert_eq!(&out[12..out.len() - 1], &coded[..]);
    }
}
