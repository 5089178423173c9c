//! Ids of jobs, media and upload tokens: the bottom of the house, used by every other module.
//!
//! Both are unguessable (cuid2, about 119 random bits), because a job id is all a client needs
//! to read its status, and a media id names public objects. Newtypes keep the two apart across
//! module lines.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new unguessable id (cuid2).
            pub fn generate() -> Self {
                Self(format!(concat!($prefix, "{}"), cuid2::create_id()))
            }
            /// Wraps an id read from a request or a row.
            pub fn from_string(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A job's id: collision-resistant and unguessable.
    JobId, ""
);
id_type!(
    /// A media record's id: `med_` plus a cuid2.
    MediaId, "med_"
);
id_type!(
    /// An upload token's id: `tok_` plus a cuid2. The jobs a token creates record it.
    TokenId, "tok_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_prefix_and_differ() {
        let (a, b) = (MediaId::generate(), MediaId::generate());
        assert!(a.as_str().starts_with("med_"));
        assert_ne!(a, b);
        assert!(JobId::generate().as_str().len() >= 20);
    }
}
