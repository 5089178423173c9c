//! What uploads become: the `[variants.<name>]` and `[source_types.<name>]` tables.

use std::collections::BTreeMap;

use super::raw::{RawSourceType, RawVariant};
use super::{ConfigError, invalid};
use crate::pipeline::{Fit, VariantSpec};

/// What one `sourceType` makes.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceType {
    /// Variant names, in the configured order.
    pub variants: Vec<String>,
    /// WebP quality, 1–100.
    pub quality: f32,
    /// Whether the (metadata-stripped) original is stored too.
    pub keep_original: bool,
}

/// Checks every variant: a width, and a height wherever `fit = "cover"` needs a box.
pub fn variants(
    raw: &BTreeMap<String, RawVariant>,
) -> Result<BTreeMap<String, VariantSpec>, ConfigError> {
    raw.iter()
        .map(|(name, v)| {
            if v.width == 0 || v.height == Some(0) {
                return Err(invalid(format!("variants.{name}"), "needs a width above 0"));
            }
            if v.fit == Fit::Cover && v.height.is_none() {
                return Err(invalid(
                    format!("variants.{name}"),
                    "has fit = \"cover\", which needs a height",
                ));
            }
            let spec = VariantSpec {
                name: name.clone(),
                width: v.width,
                height: v.height,
                fit: v.fit,
            };
            Ok((name.clone(), spec))
        })
        .collect()
}

/// Checks every source type: WebP output, a quality of 1–100, variants that exist.
pub fn source_types(
    raw: BTreeMap<String, RawSourceType>,
    variants: &BTreeMap<String, VariantSpec>,
) -> Result<BTreeMap<String, SourceType>, ConfigError> {
    raw.into_iter()
        .map(|(name, st)| {
            let key = format!("source_types.{name}");
            if st.format != "webp" {
                return Err(invalid(
                    key,
                    format!("has format {:?}; only \"webp\" is produced", st.format),
                ));
            }
            if !(1.0..=100.0).contains(&st.quality) {
                return Err(invalid(key, "has a quality outside 1–100"));
            }
            if let Some(missing) = st.variants.iter().find(|v| !variants.contains_key(*v)) {
                return Err(invalid(
                    key,
                    format!("names an unknown variant {missing:?}"),
                ));
            }
            let source_type = SourceType {
                variants: st.variants,
                quality: st.quality,
                keep_original: st.keep_original,
            };
            Ok((name, source_type))
        })
        .collect()
}
