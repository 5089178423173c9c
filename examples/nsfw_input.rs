//! Writes the exact 224×224 input the local classifier gives open_nsfw for each image, as PNG,
//! so an independent runtime can score the same pixels (`scripts/moderation-reference`).
//!
//! `cargo run --example nsfw_input --features nsfw -- OUT_DIR IMAGE...`

use std::path::PathBuf;

use ximagepipeline::Config;
use ximagepipeline::moderation::nsfw::{self, NsfwModerator};
use ximagepipeline::pipeline;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let out = args.next().ok_or("usage: nsfw_input OUT_DIR IMAGE...")?;
    std::fs::create_dir_all(&out)?;
    let limits = Config::embedded("unused")?.limits;
    for file in args {
        let bytes = std::fs::read(&file)?;
        let prepared = pipeline::prepare(&bytes, &limits)?;
        let thumbnail = prepared.thumbnail(NsfwModerator::IMAGE_SIDE)?;
        let input = nsfw::model_input(&thumbnail)?;
        let name = file.file_name().ok_or("no file name")?.to_string_lossy();
        input.save(out.join(format!("{name}.png")))?;
    }
    Ok(())
}
