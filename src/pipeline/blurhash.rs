//! The blurhash placeholder: 4×3 components from a thumbnail of at most 64 pixels a side.
//!
//! It is computed on the oriented image (`orient`), so the placeholder matches the variants.

use image::DynamicImage;

use super::PipelineError;

/// Components across and down.
const COMPONENTS: (u32, u32) = (4, 3);
/// Longest side of the thumbnail the hash is computed from.
const THUMBNAIL_SIDE: u32 = 64;

/// Computes the blurhash of `image`.
///
/// # Errors
/// `Resize` or `Blurhash` (neither is expected for a non-empty image).
pub fn of(image: &DynamicImage) -> Result<String, PipelineError> {
    let thumbnail = super::resize::thumbnail(image, THUMBNAIL_SIDE)?.into_rgba8();
    blurhash::encode(
        COMPONENTS.0,
        COMPONENTS.1,
        thumbnail.width(),
        thumbnail.height(),
        thumbnail.as_raw(),
    )
    .map_err(|err| PipelineError::Blurhash(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_has_4x3_components() {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_fn(300, 200, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }));
        let hash = of(&image).unwrap();
        // 1 size char, 1 max AC, 4 DC, 2 for each of the 11 AC components.
        assert_eq!(hash.len(), 28);
        // First char encodes (nx-1) + (ny-1)*9 = 3 + 18 = 21 -> 'L'.
        assert!(hash.starts_with('L'), "{hash}");
    }

    #[test]
    fn tiny_images_work() {
        let image = DynamicImage::new_rgba8(1, 1);
        assert!(of(&image).is_ok());
    }
}
