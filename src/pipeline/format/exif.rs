//! The one EXIF block the stripped originals may carry: an Orientation tag and nothing else.

/// A big-endian TIFF header with one IFD holding only the Orientation tag (0x0112).
pub fn minimal(orientation: u8) -> Vec<u8> {
    let mut tiff = b"MM\0\x2A\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&[0, orientation, 0, 0]); // value, left-justified
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    tiff
}
