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

/// Types of the contract this build cannot read: AVIF and HEIC without the `heif` feature.
/// The defaults list them; a build without them drops them from `allowed_mime_types` (uploads
/// of them get 415) and says so at start-up.
pub const MISSING_FORMATS: &[&str] = &[
    #[cfg(not(feature = "heif"))]
    "image/avif",
    #[cfg(not(feature = "heif"))]
    "image/heic",
];

/// Other registered names of a supported type, and the name uploads are sniffed as.
/// `image/heif` is the registered type of the HEIF container; sniffing calls every HEIF/HEIC
/// file `image/heic`.
const ALIASES: &[(&str, &str)] = &[("image/heif", "image/heic")];

/// Checks `max_file_size`.
pub fn max_file_size(bytes: u64) -> Result<u64, ConfigError> {
    if bytes == 0 {
        return Err(invalid("max_file_size", "must be more than 0"));
    }
    Ok(bytes)
}

/// Checks `allowed_mime_types` against what this build reads, writing aliases under the name
/// uploads are sniffed as (each type once) and leaving out the [`MISSING_FORMATS`].
pub fn allowed_mime_types(types: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let mut allowed: Vec<String> = Vec::with_capacity(types.len());
    for mime in types {
        let name = ALIASES
            .iter()
            .find(|(alias, _)| *alias == mime)
            .map_or(mime.as_str(), |(_, name)| name);
        if MISSING_FORMATS.contains(&name) {
            continue;
        }
        if !SUPPORTED_MIME_TYPES.contains(&name) {
            return Err(invalid(
                "allowed_mime_types",
                format!(
                    "holds {mime:?}, which is not supported (supported: {})",
                    SUPPORTED_MIME_TYPES.join(", ")
                ),
            ));
        }
        if !allowed.iter().any(|m| m == name) {
            allowed.push(name.to_owned());
        }
    }
    Ok(allowed)
}

/// Reads `max_pixels`, `max_side` and `max_decoded_bytes`.
pub fn limits(
    max_pixels: u64,
    max_side: u32,
    max_decoded_bytes: u64,
) -> Result<Limits, ConfigError> {
    if max_pixels == 0 {
        return Err(invalid("max_pixels", "must be more than 0"));
    }
    if max_side == 0 {
        return Err(invalid("max_side", "must be more than 0"));
    }
    if max_decoded_bytes == 0 {
        return Err(invalid("max_decoded_bytes", "must be more than 0"));
    }
    Ok(Limits {
        max_pixels,
        max_side,
        max_decoded_bytes,
    })
}

/// Checks `idempotency_window_secs`: at least a second.
pub fn idempotency_window(secs: u64) -> Result<std::time::Duration, ConfigError> {
    if secs == 0 {
        return Err(invalid("idempotency_window_secs", "must be at least 1"));
    }
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(types: &[&str]) -> Result<Vec<String>, ConfigError> {
        allowed_mime_types(types.iter().map(|t| (*t).to_owned()).collect())
    }

    #[cfg(feature = "heif")]
    #[test]
    fn image_heif_is_image_heic() {
        assert_eq!(allowed(&["image/heif"]).unwrap(), ["image/heic"]);
        assert_eq!(
            allowed(&["image/png", "image/heif", "image/heic"]).unwrap(),
            ["image/png", "image/heic"]
        );
    }

    #[cfg(not(feature = "heif"))]
    #[test]
    fn without_the_heif_feature_avif_and_heic_are_left_out() {
        assert_eq!(
            allowed(&["image/png", "image/heif", "image/heic", "image/avif"]).unwrap(),
            ["image/png"]
        );
    }

    #[test]
    fn unknown_types_are_refused_by_name() {
        let err = allowed(&["image/jpeg", "image/bmp"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"image/bmp\""), "{err}");
    }
}
