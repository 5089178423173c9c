//! Re-compresses the LZW data of a GIF image block, so no byte of the upload survives in it.
//!
//! `valid/gif_hostile_php_in_comment.gif` hides `<?php` inside its LZW stream, before the end
//! code, where decoders read it as pixel codes. Decoding the stream to palette indices and
//! encoding them again (same minimum code size, same indices) keeps every pixel and every frame
//! as it was while the coded bytes become our own. Re-coding with the same code size is not
//! enough: that file's payload was crafted against the standard greedy LZW encoder, which
//! reproduces it byte for byte. So the indices are coded with a minimum code size one larger
//! than the original's (valid GIF, ~1 bit more per code), which shifts every code, and the
//! result is checked for script openers (`<?`, `<%`, `<script`), trying other sizes if needed.
//! `strip` calls this for each frame; frames that cannot be decoded here are left to its
//! end-code trimming.

use weezl::{BitOrder, LzwStatus, decode::Decoder, encode::Encoder};

/// Re-encodes one image block (descriptor, local colour table, LZW data, terminator).
///
/// `max_pixels` bounds the indices decoded (a frame cannot be larger than the logical screen
/// the limits were checked on). Returns `None` when the block cannot be re-encoded with the
/// same result: bad minimum code size, LZW errors, a frame over `max_pixels`.
pub fn recompress(block: &[u8], max_pixels: u64) -> Option<Vec<u8>> {
    let descriptor = block.get(..10)?;
    let width = u64::from(u16::from_le_bytes([descriptor[5], descriptor[6]]));
    let height = u64::from(u16::from_le_bytes([descriptor[7], descriptor[8]]));
    let pixels = width * height;
    if pixels > max_pixels {
        return None;
    }
    let packed = descriptor[9];
    let table = if packed & 0x80 == 0 {
        0
    } else {
        3 << ((packed & 0x07) + 1)
    };
    let data_start = 10 + table + 1;
    let head = block.get(..data_start)?;
    let min_code_size = *block.get(data_start - 1)?;
    // weezl encodes code sizes 2 to 12; GIF allows up to 11 (12-bit codes).
    if !(2..=11).contains(&min_code_size) {
        return None;
    }
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

    let indices = decode_bounded(&lzw, min_code_size, pixels as usize)?;
    let (size, coded) = (min_code_size + 1..=11)
        .chain([min_code_size])
        .filter_map(|size| {
            let coded = Encoder::new(BitOrder::Lsb, size).encode(&indices).ok()?;
            Some((size, coded))
        })
        .find(|(_, coded)| !has_script_opener(coded))?;
    let mut out = head.to_vec();
    if let Some(last) = out.last_mut() {
        *last = size;
    }
    for sub in coded.chunks(255) {
        out.push(sub.len() as u8);
        out.extend_from_slice(sub);
    }
    out.push(0);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_survive_and_hidden_bytes_do_not() {
        let indices: Vec<u8> = (0..64u32).map(|i| (i * 7 % 4) as u8).collect();
        let coded = Encoder::new(BitOrder::Lsb, 2)
            .encode(&indices)
            .unwrap_or_default();
        let mut block = vec![0x2C, 0, 0, 0, 0, 8, 0, 8, 0, 0, 2];
        let mut data = coded.clone();
        data.extend_from_slice(b"<?php junk ?>");
        block.push(data.len() as u8);
        block.extend_from_slice(&data);
        block.push(0);
        let out = recompress(&block, 1 << 20).unwrap_or_default();
        assert!(!out.windows(5).any(|w| w == b"<?php"));
        assert_eq!(out[10], 3, "one more than the original code size");
        let lzw = &out[12..out.len() - 1];
        let decoded = Decoder::new(BitOrder::Lsb, 3)
            .decode(lzw)
            .unwrap_or_default();
        assert_eq!(decoded, indices);
    }
}
