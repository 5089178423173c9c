//! The module graph of `docs/architecture.md`, enforced: every `crate::` path in `src/` must
//! point at a module its own module may use, so imports run one way and cannot form a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module → the modules it may use (besides itself). `lib.rs` may use everything.
const ALLOWED: &[(&str, &[&str])] = &[
    ("ids", &[]),
    ("pipeline", &[]),
    ("config", &["pipeline"]),
    ("queue", &["config", "ids"]),
    ("storage", &["config", "ids"]),
    ("moderation", &["config"]),
    ("metrics", &["queue"]),
    ("traces", &[]),
    ("intake", &["queue", "storage", "pipeline", "config", "ids"]),
    ("catalog", &["queue", "storage", "config", "ids"]),
    ("webhooks", &["queue", "catalog", "config", "ids"]),
    (
        "worker",
        &[
            "queue",
            "storage",
            "moderation",
            "metrics",
            "traces",
            "webhooks",
            "pipeline",
            "config",
            "ids",
        ],
    ),
    ("admin", &["worker", "queue", "storage", "ids"]),
    (
        "http",
        &[
            "intake", "catalog", "queue", "storage", "metrics", "traces", "config", "ids",
        ],
    ),
    // The HTTP client speaks the server's body types, and nothing else of it.
    ("client", &["catalog", "http"]),
];

fn src() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/worker/claim.rs` → `worker`); `None` for the
/// crate root and the binary.
fn module_of(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src()).unwrap();
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_owned();
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(name) => Some(name.to_owned()),
        // The binary's command line.
        None if first == "cli" => None,
        None => Some(first),
    }
}

/// The top-level modules a file's code names through `crate::`, including inside `use` trees
/// such as `crate::{a, b::c}`. Comments are skipped: a doc link is not a dependency.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    out.insert(name.to_owned());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

#[test]
fn imports_run_one_way() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    assert!(files.len() > 20, "src/ not found at {}", src().display());
    let mut problems = Vec::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        let Some(may_use) = allowed.get(module.as_str()) else {
            problems.push(format!(
                "{}: module `{module}` is not in the table",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in crate_paths(&text) {
            if used != module && !may_use.contains(&used.as_str()) {
                problems.push(format!(
                    "{}: `{module}` uses `crate::{used}`",
                    file.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_table_has_no_cycle() {
    // Each module may only use modules listed before it, so a cycle cannot exist.
    for (i, (module, uses)) in ALLOWED.iter().enumerate() {
        for used in *uses {
            let before = ALLOWED[..i].iter().any(|(m, _)| m == used);
            assert!(before, "`{module}` uses `{used}`, which is not below it");
        }
    }
}

#[test]
fn the_path_reader_sees_grouped_imports() {
    let found = crate_paths(
        "use crate::{ImagePipeline, queue::Job};\nlet x = crate::ids::JobId; // crate::http\n",
    );
    let want: BTreeSet<String> = ["ImagePipeline", "queue", "ids"].map(String::from).into();
    assert_eq!(found, want);
}

#[test]
fn unsafe_code_lives_in_the_libwebp_wrapper_only() {
    // lib.rs denies `unsafe_code`; one module lifts it, for libwebp's C API.
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let lifted: Vec<_> = files
        .iter()
        .filter(|file| {
            std::fs::read_to_string(file)
                .unwrap()
                .contains("allow(unsafe_code)")
        })
        .map(|file| file.strip_prefix(src()).unwrap().display().to_string())
        .collect();
    assert_eq!(lifted, ["pipeline/libwebp.rs"]);
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    assert!(lib.contains("#![deny(unsafe_code)]"));
}
