//! Applies the EXIF orientation so that pixels are stored upright.
//!
//! Reading the orientation is `decode`'s job; writing it back into the kept original is
//! `strip`'s. After this step, width and height are the displayed size.

use image::DynamicImage;
use image::metadata::Orientation;

/// Rotates and flips `image` as EXIF orientation 1–8 asks (1 leaves it as it is).
pub fn apply(mut image: DynamicImage, orientation: Orientation) -> DynamicImage {
    image.apply_orientation(orientation);
    image
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GenericImageView, Rgb, RgbImage};

    /// A 3×2 image with a marked top-left pixel.
    fn marked() -> DynamicImage {
        let mut img = RgbImage::new(3, 2);
        img.put_pixel(0, 0, Rgb([255, 0, 0]));
        DynamicImage::ImageRgb8(img)
    }

    #[test]
    fn every_exif_orientation_lands_upright() {
        // (exif value, displayed size, where the stored top-left pixel ends up)
        for (exif, size, corner) in [
            (1, (3, 2), (0, 0)),
            (2, (3, 2), (2, 0)),
            (3, (3, 2), (2, 1)),
            (4, (3, 2), (0, 1)),
            (5, (2, 3), (0, 0)),
            (6, (2, 3), (1, 0)),
            (7, (2, 3), (1, 2)),
            (8, (2, 3), (0, 2)),
        ] {
            let orientation = Orientation::from_exif(exif).unwrap_or(Orientation::NoTransforms);
            let out = apply(marked(), orientation);
            assert_eq!(out.dimensions(), size, "orientation {exif}");
            assert_eq!(
                out.get_pixel(corner.0, corner.1).0[0],
                255,
                "orientation {exif}"
            );
        }
    }
}
