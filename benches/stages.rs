//! The pipeline stage by stage, so that a regression shows where it happened.
//!
//! `cargo bench --bench stages` (criterion; `-- decode` for one group). Inputs are corpus
//! photos: a 6.3 MP JPEG for most stages, the 12 MP iPhone-style JPEG with EXIF orientation 6
//! for `orient`. Each stage gets the previous stage's real output, as in a job:
//! sniff+probe → decode → orient → resize (the `gallery` variants) → encode → blurhash → store.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use image::metadata::Orientation;
use toml::Table;
use ximagepipeline::Config;
use ximagepipeline::pipeline::shrink::Needs;
use ximagepipeline::pipeline::stop::Stop;
use ximagepipeline::pipeline::{self, Limits, blurhash, decode, encode, orient, resize};
use ximagepipeline::storage::Storage;

const PHOTO: &str = "../shared/corpus/photos/hato_6.3mp.jpg";
const ROTATED: &str = "../shared/corpus/photos/dog_12mp_orientation6_exif_xmp_icc.jpg";

fn read(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e} (the corpus lives at ../shared)"))
}

fn config(data_dir: &Path) -> Config {
    let mut flags = Table::new();
    flags.insert("data_dir".into(), data_dir.display().to_string().into());
    Config::load(None, std::iter::empty(), flags).expect("default configuration")
}

fn stages(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let config = config(dir.path());
    let limits = config.limits;
    let gallery = config.output_spec("gallery").expect("gallery source type");
    let photo = read(PHOTO);
    let rotated = read(ROTATED);

    c.bench_function("sniff+probe", |b| {
        b.iter(|| pipeline::probe(black_box(&photo), &limits).expect("probe"))
    });

    let format = pipeline::probe(&photo, &limits).expect("probe").format;
    let mut group = c.benchmark_group("decode");
    group.sample_size(20);
    group.bench_function("jpeg 6.3 MP", |b| {
        b.iter(|| {
            decode::first_frame(black_box(&photo), format, &limits, &Needs::full_size())
                .expect("decode")
        })
    });
    // What an avatar needs of the 12 MP photo: shrunk to 1/4 on load.
    let avatar = Needs::outputs(&config.output_spec("avatar").expect("avatar source type"));
    group.bench_function("jpeg 12 MP, full size", |b| {
        b.iter(|| {
            decode::first_frame(black_box(&rotated), format, &limits, &Needs::full_size())
                .expect("decode")
        })
    });
    group.bench_function("jpeg 12 MP, for avatar (1/4 on load)", |b| {
        b.iter(|| {
            decode::first_frame(black_box(&rotated), format, &limits, &avatar).expect("decode")
        })
    });
    group.finish();

    // The 12 MP photo decoded but not yet turned upright.
    let stored = decoded(&rotated, &limits);
    let mut group = c.benchmark_group("orient");
    group.sample_size(20);
    group.bench_function("rotate 12 MP (EXIF 6)", |b| {
        b.iter_batched(
            || stored.clone(),
            |image| orient::apply(image, Orientation::Rotate90),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();

    let image = decoded(&photo, &limits);
    let size = (image.width(), image.height());
    let mut group = c.benchmark_group("resize");
    group.sample_size(20);
    group.bench_function("gallery variants", |b| {
        b.iter(|| {
            resize::all(black_box(&image), size, &gallery.variants, &Stop::default())
                .expect("resize")
        })
    });
    group.finish();

    let resized = resize::all(&image, size, &gallery.variants, &Stop::default()).expect("resize");
    let mut group = c.benchmark_group("encode");
    group.sample_size(10);
    group.bench_function("gallery variants", |b| {
        b.iter(|| {
            encode::webp_all(black_box(&resized), gallery.quality, &Stop::default())
                .expect("encode")
        })
    });
    group.finish();

    c.bench_function("blurhash", |b| {
        b.iter(|| blurhash::of(black_box(&image)).expect("blurhash"))
    });

    let encoded = encode::webp_all(&resized, gallery.quality, &Stop::default()).expect("encode");
    let storage = Storage::open(&config).expect("local storage");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    c.bench_function("store (local, gallery variants)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                for variant in &encoded {
                    let key = format!("media/bench/{}.webp", variant.name);
                    storage
                        .put(&key, variant.webp.clone().into())
                        .await
                        .expect("put");
                }
            })
        })
    });
}

/// A file's first frame in sRGB, as stored (orientation not applied).
fn decoded(bytes: &[u8], limits: &Limits) -> image::DynamicImage {
    let format = pipeline::probe(bytes, limits).expect("probe").format;
    decode::first_frame(bytes, format, limits, &Needs::full_size())
        .expect("decode")
        .image
}

criterion_group!(benches, stages);
criterion_main!(benches);
