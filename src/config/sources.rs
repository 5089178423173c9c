//! The configuration as given: defaults, file, `XIP_*` variables and flags, each a TOML table,
//! merged in that order by one rule, remembering which source wrote each key last.
//!
//! Knowing the source lets every error name what the user has to change: the file and key
//! (`ximagepipeline.toml: worker.concurrency: …`) or the variable (`XIP_WORKER_CONCURRENCY: …`).
//! Keys are checked against [`RawConfig`]'s shape source by source, types by serde on the
//! merged table (`serde_path_to_error` gives the key of a wrong value).

use std::fmt;
use std::path::PathBuf;
use std::sync::LazyLock;

use serde_path_to_error::Segment;
use toml::{Table, Value};

use super::ConfigError;
use super::env;
use super::raw::RawConfig;
use super::shape::Shape;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The built-in defaults.
    Defaults,
    /// The configuration file.
    File(PathBuf),
    /// An `XIP_*` environment variable.
    Env(String),
    /// A command-line flag.
    Flags,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Defaults => f.write_str("defaults"),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Env(name) => f.write_str(name),
            Origin::Flags => f.write_str("command line"),
        }
    }
}

impl Origin {
    /// How an error names `key` from this source: the variable alone when it is the key's own,
    /// else the source and the key.
    pub(super) fn locate(&self, key: &str) -> String {
        match self {
            _ if key.is_empty() => self.to_string(),
            Origin::Env(name) if *name == env::name_of(&key.split('.').collect::<Vec<_>>()) => {
                name.clone()
            }
            Origin::Defaults => key.to_owned(),
            _ => format!("{self}: {key}"),
        }
    }
}

/// Every key a configuration may hold, read from [`RawConfig`] itself.
static SHAPE: LazyLock<Shape> = LazyLock::new(Shape::of::<RawConfig>);

/// Parses a TOML text; the message says where it is wrong.
pub fn parse_toml(text: &str) -> Result<Table, String> {
    text.parse::<Table>().map_err(|e| e.to_string())
}

/// The sources merged so far and who wrote what.
#[derive(Debug, Default)]
pub struct Layers {
    table: Table,
    /// Each key path written (the leaves of every source), in the order written.
    written: Vec<(Vec<String>, Origin)>,
}

impl Layers {
    /// Checks `table`'s keys, then merges it over the sources before it: tables merge key by
    /// key, anything else is replaced.
    ///
    /// # Errors
    /// An [`ConfigError::Invalid`] naming a key the configuration does not have, and `origin`.
    pub fn add(&mut self, table: Table, origin: Origin) -> Result<(), ConfigError> {
        check_keys(&table, &SHAPE, &mut Vec::new(), &origin)?;
        leaves(&table, &mut Vec::new(), &mut |path| {
            self.written.push((path.to_vec(), origin.clone()));
        });
        merge(&mut self.table, table);
        Ok(())
    }

    /// Reads the merged sources into typed values.
    ///
    /// # Errors
    /// An [`ConfigError::Invalid`] naming the key of a wrong value and the source it came from.
    pub fn read(&self) -> Result<RawConfig, ConfigError> {
        serde_path_to_error::deserialize(Value::Table(self.table.clone())).map_err(|e| {
            let key: Vec<String> = e
                .path()
                .iter()
                .map_while(|segment| match segment {
                    Segment::Map { key } => Some(key.clone()),
                    Segment::Enum { variant } => Some(variant.clone()),
                    _ => None,
                })
                .collect();
            ConfigError::Invalid {
                origin: self.origin_of(&key).cloned(),
                key: key.join("."),
                message: e.into_inner().message().trim().to_owned(),
            }
        })
    }

    /// Every leaf of the merged sources as `key = value` text with the source that set it,
    /// in key order; secrets (`*secret`, `*_token`, `*password*` keys, and a URL's password) are
    /// masked.
    pub fn effective(&self) -> Vec<(String, String, Origin)> {
        let mut out = Vec::new();
        leaves(&self.table, &mut Vec::new(), &mut |path| {
            let mut value = Value::Table(self.table.clone());
            for key in path {
                value = value.get(key).cloned().unwrap_or(Value::Boolean(false));
            }
            let key = path.join(".");
            let shown = masked(&key, &value);
            let origin = self.origin_of(path).cloned().unwrap_or(Origin::Defaults);
            out.push((key, shown, origin));
        });
        out
    }

    /// Gives an error of validation (which knows the key, not its source) its source.
    pub fn locate(&self, error: ConfigError) -> ConfigError {
        match error {
            ConfigError::Invalid {
                origin: None,
                key,
                message,
            } => {
                let path: Vec<String> = key.split('.').map(str::to_owned).collect();
                ConfigError::Invalid {
                    origin: self.origin_of(&path).cloned(),
                    key,
                    message,
                }
            }
            other => other,
        }
    }

    /// The source that last wrote `key` or a key inside it (a table missing a field is the
    /// fault of whoever wrote the table).
    fn origin_of(&self, key: &[String]) -> Option<&Origin> {
        self.written
            .iter()
            .rev()
            .find(|(path, _)| path.starts_with(key) || key.starts_with(path))
            .map(|(_, origin)| origin)
    }
}

/// Refuses keys that `shape` does not have, naming the first one found.
fn check_keys(
    table: &Table,
    shape: &Shape,
    path: &mut Vec<String>,
    origin: &Origin,
) -> Result<(), ConfigError> {
    for (key, value) in table {
        path.push(key.clone());
        let inner = match shape {
            Shape::Struct(fields) => match fields.iter().find(|(name, _)| name == key) {
                Some((_, inner)) => inner,
                None => {
                    let known: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
                    return Err(ConfigError::Invalid {
                        origin: Some(origin.clone()),
                        key: path.join("."),
                        message: format!("is not a known key (known: {})", known.join(", ")),
                    });
                }
            },
            Shape::Map(entry) => entry,
            // A table where a value belongs: serde names the type mismatch.
            Shape::Leaf(_) => return Ok(()),
        };
        if let Value::Table(table) = value {
            check_keys(table, inner, path, origin)?;
        }
        path.pop();
    }
    Ok(())
}

/// Calls `f` with the path of every value in `table` that is not itself a table (and of every
/// empty table).
fn leaves(table: &Table, path: &mut Vec<String>, f: &mut impl FnMut(&[String])) {
    for (key, value) in table {
        path.push(key.clone());
        match value {
            Value::Table(inner) if !inner.is_empty() => leaves(inner, path, f),
            _ => f(path),
        }
        path.pop();
    }
}

/// `value` as TOML text, or `"***"` for a secret; a URL keeps all but its password.
fn masked(key: &str, value: &Value) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    let secret = last.ends_with("secret")
        || last.ends_with("secret_access_key")
        || last.ends_with("_token")
        || last.contains("password");
    if secret {
        return "\"***\"".to_owned();
    }
    match value.as_str() {
        Some(text) if text.contains("://") && text.contains('@') => {
            let (scheme, rest) = text.split_once("://").expect("checked");
            let (credentials, host) = rest.rsplit_once('@').expect("checked");
            let user = credentials.split(':').next().unwrap_or_default();
            let hidden = if credentials.contains(':') {
                ":***"
            } else {
                ""
            };
            format!("\"{scheme}://{user}{hidden}@{host}\"")
        }
        _ => value.to_string(),
    }
}

/// Merges `over` into `base`: tables merge key by key, anything else is replaced.
fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_urls_keep_all_but_the_password() {
        let text = |v: &str| Value::String(v.to_owned());
        assert_eq!(masked("auth.token_secret", &text("abc")), "\"***\"");
        assert_eq!(masked("s3.secret_access_key", &text("abc")), "\"***\"");
        assert_eq!(masked("s3.session_token", &text("abc")), "\"***\"");
        assert_eq!(
            masked("auth.token_ttl_secs", &Value::Integer(600)),
            "600",
            "not a secret"
        );
        assert_eq!(
            masked("database_url", &text("postgres://app:hunter2@db:5432/x")),
            "\"postgres://app:***@db:5432/x\""
        );
        assert_eq!(
            masked("database_url", &text("sqlite://./data/x.db")),
            "\"sqlite://./data/x.db\""
        );
    }

    fn layers(sources: &[(&str, Origin)]) -> Layers {
        let mut layers = Layers::default();
        for (text, origin) in sources {
            layers
                .add(parse_toml(text).unwrap(), origin.clone())
                .unwrap();
        }
        layers
    }

    #[test]
    fn merge_keeps_untouched_fields_of_a_table() {
        let l = layers(&[
            (
                "[variants.md]\nwidth = 640\nfit = \"inside\"",
                Origin::Defaults,
            ),
            ("[variants.md]\nwidth = 800", Origin::Flags),
        ]);
        let md = l.table["variants"]["md"].as_table().unwrap();
        assert_eq!(md["width"].as_integer(), Some(800));
        assert_eq!(md["fit"].as_str(), Some("inside"));
    }

    #[test]
    fn the_last_writer_of_a_key_is_its_origin() {
        let file = Origin::File("c.toml".into());
        let l = layers(&[
            (
                "[worker]\nmax_attempts = 3\nconcurrency = 2",
                Origin::Defaults,
            ),
            ("[worker]\nconcurrency = 4", file.clone()),
        ]);
        let key = |k: &str| k.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(l.origin_of(&key("worker.concurrency")), Some(&file));
        assert_eq!(
            l.origin_of(&key("worker.max_attempts")),
            Some(&Origin::Defaults)
        );
        assert_eq!(l.origin_of(&key("listen")), None);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_source() {
        let mut l = Layers::default();
        let err = l
            .add(
                parse_toml("[variants.md]\nwidht = 3").unwrap(),
                Origin::File("c.toml".into()),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.toml: variants.md.widht: is not a known key"),
            "{err}"
        );
    }
}
