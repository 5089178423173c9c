//! TEMPORARY STUB of the pipeline (the real one is being written beside this).
#![allow(missing_docs, dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat { Jpeg, Png, Webp, Gif, Avif, Heic, Tiff }
impl ImageFormat {
    pub fn mime(self) -> &'static str { "image/jpeg" }
    pub fn extension(self) -> &'static str { "jpg" }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit { Cover, Inside }
#[derive(Debug, Clone, PartialEq)]
pub struct VariantSpec { pub name: String, pub width: u32, pub height: Option<u32>, pub fit: Fit }
#[derive(Debug, Clone)]
pub struct OutputSpec { pub variants: Vec<VariantSpec>, pub quality: f32, pub keep_original: bool }
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits { pub max_pixels: u64, pub max_side: u32 }
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe { pub format: ImageFormat, pub width: u32, pub height: u32 }
pub struct EncodedVariant { pub name: String, pub width: u32, pub height: u32, pub webp: Vec<u8> }
pub struct Processed {
    pub format: ImageFormat, pub width: u32, pub height: u32, pub aspect_ratio: String,
    pub blurhash: String, pub variants: Vec<EncodedVariant>, pub original: Option<Vec<u8>>,
}
pub mod sniff {
    use super::ImageFormat;
    pub enum Sniffed { Image(ImageFormat), Other(&'static str) }
    pub fn detect(_b: &[u8]) -> Sniffed { Sniffed::Other("application/octet-stream") }
}
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("file is empty")] Empty,
    #[error("too many")] TooManyPixels { width: u32, height: u32, limits: Limits },
}
impl PipelineError { pub fn is_permanent(&self) -> bool { true } }
pub fn probe(_b: &[u8], _l: &Limits) -> Result<Probe, PipelineError> { Err(PipelineError::Empty) }
pub fn process(_b: &[u8], _s: &OutputSpec, _l: &Limits) -> Result<Processed, PipelineError> { Err(PipelineError::Empty) }
