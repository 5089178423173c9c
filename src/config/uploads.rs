//! What an upload may be: `max_file_size`, `allowed_mime_types`, `max_pixels` and `max_side`.

use super::{ConfigError, invalid};
use crate::pipeline::Limits;

/// MIME types this build can read (AVIF and HEIC need the `heif` feature).
pub const SUPPORTED_MIME_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/tiff",
    #[cfg(feature = "heif")]
    "image/avif",
    #[cfg(feature = "heif")]
    "image/heic",
];

/// Checks `max_file_size`.
pub fn max_file_size(bytes: u64) -> Result<u64, ConfigError> {
    if bytes == 0 {
        return Err(invalid("max_file_size", "must be more than 0"));
    }
    Ok(bytes)
}

/// Checks `allowed_mime_types` against what this build reads.
pub fn allowed_mime_types(types: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if let Some(mime) = types
        .iter()
        .find(|m| !SUPPORTED_MIME_TYPES.contains(&m.as_str()))
    {
        return Err(invalid(
            "allowed_mime_types",
            format!(
                "holds {mime:?}, which is not supported (supported: {})",
                SUPPORTED_MIME_TYPES.join(", ")
            ),
        ));
    }
    Ok(types)
}

/// Reads `max_pixels` and `max_side`.
pub fn limits(max_pixels: u64, max_side: u32) -> Result<Limits, ConfigError> {
    if max_pixels == 0 {
        return Err(invalid("max_pixels", "must be more than 0"));
    }
    if max_side == 0 {
        return Err(invalid("max_side", "must be more than 0"));
    }
    Ok(Limits {
        max_pixels,
        max_side,
    })
}
