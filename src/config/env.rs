//! `XIP_*` environment variables: one for every key of the configuration, named after its path.
//!
//! `XIP_` plus the path in upper case, joined with `_`: `listen` is `XIP_LISTEN`, `[worker]
//! concurrency` is `XIP_WORKER_CONCURRENCY`. Keys contain underscores themselves, so a name is
//! never split; it is looked up in the list of every key, derived from [`RawConfig`]'s own
//! shape (`shape.rs`), so a new field gets its variable without a second list to keep.
//! Lists are comma-separated; a table of names the user chooses (`variants`, `source_types`,
//! `moderation.thresholds`) takes a TOML inline table.

use std::sync::LazyLock;

use toml::{Table, Value};

use super::ConfigError;
use super::raw::RawConfig;
use super::shape::{Kind, Shape};
use super::sources::{Origin, parse_toml};

/// One variable and the key it sets.
#[derive(Debug)]
pub struct Variable {
    /// `XIP_WORKER_CONCURRENCY`.
    pub name: String,
    /// `["worker", "concurrency"]`.
    pub path: Vec<&'static str>,
    /// How its text becomes a value.
    pub form: Form,
}

/// How a variable's text becomes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A single value of this kind.
    Value(Kind),
    /// A table of names the user chooses, as a TOML inline table.
    InlineTable,
    /// A table of fixed keys: not set itself; each key has its own variable.
    Keys,
}

/// Every variable, in the order of [`RawConfig`]'s fields.
pub static VARIABLES: LazyLock<Vec<Variable>> = LazyLock::new(|| {
    let mut out = Vec::new();
    collect(&Shape::of::<RawConfig>(), &mut Vec::new(), &mut out);
    out
});

fn collect(shape: &Shape, path: &mut Vec<&'static str>, out: &mut Vec<Variable>) {
    let form = match shape {
        Shape::Leaf(kind) => Form::Value(*kind),
        Shape::Map(_) => Form::InlineTable,
        Shape::Struct(_) => Form::Keys,
    };
    if !path.is_empty() {
        out.push(Variable {
            name: name_of(path),
            path: path.clone(),
            form,
        });
    }
    if let Shape::Struct(fields) = shape {
        for (name, field) in fields {
            path.push(name);
            collect(field, path, out);
            path.pop();
        }
    }
}

/// The variable name of a key path.
pub fn name_of(path: &[&str]) -> String {
    format!("XIP_{}", path.join("_").to_ascii_uppercase())
}

/// Reads the `XIP_*` variables among `vars`: each as a one-key table and the variable it came
/// from, so an error can name it. Other variables are ignored; an unknown `XIP_` name is an
/// error.
pub fn tables(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(Table, Origin)>, ConfigError> {
    vars.into_iter()
        .filter(|(name, _)| name.starts_with("XIP_"))
        .map(|(name, text)| {
            let Some(var) = VARIABLES.iter().find(|v| v.name == name) else {
                return Err(ConfigError::Invalid {
                    origin: Some(Origin::Env(name)),
                    key: String::new(),
                    message: "is not a known setting".to_owned(),
                });
            };
            match value(var.form, &name, &text) {
                Ok(value) => Ok((nest(&var.path, value), Origin::Env(name))),
                Err(message) => Err(ConfigError::Invalid {
                    origin: Some(Origin::Env(name)),
                    key: var.path.join("."),
                    message,
                }),
            }
        })
        .collect()
}

/// Turns the text of variable `name` into a value of `form`.
fn value(form: Form, name: &str, text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    let number =
        |what: &str, e: &dyn std::fmt::Display| format!("must be {what}, got {text:?} ({e})");
    Ok(match form {
        Form::Value(Kind::Text) => Value::String(text.to_owned()),
        Form::Value(Kind::List) => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        Form::Value(Kind::Integer) => {
            Value::Integer(trimmed.parse().map_err(|e| number("a whole number", &e))?)
        }
        Form::Value(Kind::Float) => {
            Value::Float(trimmed.parse().map_err(|e| number("a number", &e))?)
        }
        Form::Value(Kind::Bool) => Value::Boolean(
            trimmed
                .parse()
                .map_err(|_| format!("must be true or false, got {text:?}"))?,
        ),
        Form::InlineTable => {
            match parse_toml(&format!("v = {trimmed}")).map(|table| table.into_iter().next()) {
                Ok(Some((_, value @ Value::Table(_)))) => value,
                _ => {
                    return Err(format!(
                        "must be a TOML inline table ({{ name = … }}), got {text:?}"
                    ));
                }
            }
        }
        Form::Keys => {
            return Err(format!(
                "is a table; set its keys one by one ({name}_<KEY>)"
            ));
        }
    })
}

/// `value` under `path`, as nested tables.
fn nest(path: &[&str], value: Value) -> Table {
    let (last, parents) = path.split_last().expect("a variable names a key");
    let mut table = Table::new();
    table.insert((*last).to_owned(), value);
    for parent in parents.iter().rev() {
        let mut outer = Table::new();
        outer.insert((*parent).to_owned(), Value::Table(table));
        table = outer;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sources::Layers;
    use crate::config::{defaults, sources::parse_toml};

    /// A text each kind accepts.
    fn sample(form: Form) -> &'static str {
        match form {
            Form::Value(Kind::Text) => "x",
            Form::Value(Kind::Integer) => "7",
            Form::Value(Kind::Float) => "0.5",
            Form::Value(Kind::Bool) => "true",
            Form::Value(Kind::List) => "a, b",
            Form::InlineTable => "{}",
            Form::Keys => unreachable!("not settable"),
        }
    }

    /// Every key of `shape` (fields of fields, not the names inside a map), as paths.
    fn keys(shape: &Shape, path: &mut Vec<&'static str>, out: &mut Vec<Vec<&'static str>>) {
        if let Shape::Struct(fields) = shape {
            for (name, field) in fields {
                path.push(name);
                out.push(path.clone());
                keys(field, path, out);
                path.pop();
            }
        }
    }

    #[test]
    fn every_key_of_raw_config_has_a_variable_that_reaches_it() {
        let mut all = Vec::new();
        keys(&Shape::of::<RawConfig>(), &mut Vec::new(), &mut all);
        assert!(all.len() > 40, "{all:?}");
        for path in all {
            let var = VARIABLES
                .iter()
                .find(|v| v.path == path)
                .unwrap_or_else(|| panic!("no XIP_ variable sets {}", path.join(".")));
            if var.form == Form::Keys {
                continue; // a table; its own keys are in the list
            }
            // Set alone over the defaults, it lands on its key, which serde accepts.
            let (table, origin) = tables([(var.name.clone(), sample(var.form).to_owned())])
                .unwrap()
                .remove(0);
            let mut at = &Value::Table(table.clone());
            for key in &var.path {
                at = &at[*key];
            }
            assert!(
                !matches!(at, Value::Table(t) if t.is_empty() && var.form != Form::InlineTable)
            );
            let mut layers = Layers::default();
            layers
                .add(parse_toml(defaults::DEFAULTS).unwrap(), Origin::Defaults)
                .unwrap();
            if let Err(e) = layers.add(table, origin) {
                panic!("{}: {e}", var.name);
            }
        }
    }

    #[test]
    fn names_are_unique_and_follow_the_keys() {
        let mut names: Vec<&str> = VARIABLES.iter().map(|v| v.name.as_str()).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "two keys share a variable name");
        for name in [
            "XIP_LISTEN",
            "XIP_ALLOWED_MIME_TYPES",
            "XIP_DATABASE_URL",
            "XIP_DATABASE_MAX_CONNECTIONS",
            "XIP_WORKER_CONCURRENCY",
            "XIP_WORKER_JOB_TIMEOUT_SECS",
            "XIP_S3_SECRET_ACCESS_KEY",
            "XIP_VARIANTS",
            "XIP_SOURCE_TYPES",
            "XIP_MODERATION_HTTP_BEARER_TOKEN",
            "XIP_MODERATION_THRESHOLDS",
        ] {
            assert!(names.contains(&name), "{name} missing");
        }
    }

    #[test]
    fn values_are_read_by_kind_and_wrong_ones_name_the_variable() {
        let read = |name: &str, text: &str| tables([(name.to_owned(), text.to_owned())]);
        let t = read("XIP_ALLOWED_MIME_TYPES", "image/jpeg, image/png").unwrap();
        assert_eq!(t[0].0["allowed_mime_types"].as_array().unwrap().len(), 2);
        let t = read("XIP_WORKER_JOB_TIMEOUT_SECS", "90").unwrap();
        assert_eq!(t[0].0["worker"]["job_timeout_secs"].as_float(), Some(90.0));
        let t = read("XIP_VARIANTS", "{ md = { width = 800 } }").unwrap();
        assert_eq!(t[0].0["variants"]["md"]["width"].as_integer(), Some(800));
        for (name, text, says) in [
            ("XIP_NOPE", "1", "XIP_NOPE: is not a known setting"),
            ("XIP_WORKER", "1", "XIP_WORKER: is a table"),
            (
                "XIP_WORKER_CONCURRENCY",
                "four",
                "XIP_WORKER_CONCURRENCY: must be a whole number",
            ),
            (
                "XIP_S3_PATH_STYLE",
                "yes",
                "XIP_S3_PATH_STYLE: must be true or false",
            ),
            (
                "XIP_VARIANTS",
                "md",
                "XIP_VARIANTS: must be a TOML inline table",
            ),
        ] {
            let err = read(name, text).unwrap_err().to_string();
            assert!(err.starts_with(says), "{name}={text:?} gave {err:?}");
        }
        assert!(read("HOME", "/root").unwrap().is_empty());
    }
}
