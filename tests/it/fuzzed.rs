//! Every input the fuzzers ever found a fault with (`fuzz/regressions/<target>/`), replayed
//! through the check of its target (`fuzz/src/lib.rs`, shared with the fuzz targets), so a
//! fixed fault cannot come back unseen. `scripts/fuzz` finds new ones; docs/fuzzing.md says
//! how to keep one.

use std::path::PathBuf;

#[path = "../../fuzz/src/lib.rs"]
mod checks;

/// The kept inputs of one target, with their file names.
fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .filter(|(name, _)| !name.starts_with('.') && name != "README.md")
        .collect();
    inputs.sort();
    inputs
}

/// Runs `check` on each kept input of `target`, naming the input that fails.
fn replay(target: &str, check: impl Fn(&[u8])) {
    for (name, bytes) in regressions(target) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&bytes)));
        assert!(
            result.is_ok(),
            "fuzz/regressions/{target}/{name} fails again"
        );
    }
}

#[test]
fn probe_findings_stay_fixed() {
    replay("probe", checks::probe);
}

#[test]
fn completeness_findings_stay_fixed() {
    replay("complete", checks::complete);
}

#[test]
fn strip_findings_stay_fixed() {
    replay("strip", checks::strip);
}

#[test]
fn pipeline_findings_stay_fixed() {
    replay("pipeline", checks::pipeline);
}

#[test]
fn upload_findings_stay_fixed() {
    let route = checks::UploadRoute::new();
    replay("upload", |body| route.upload(body));
}
