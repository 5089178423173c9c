//! Object keys: the one place that decides where each object lives (spec section 4).
//!
//! `staging/{jobId}`, `media/{sourceType}/{sourceId}/{mediaId}/{variant}.webp`,
//! `originals/{sourceType}/{sourceId}/{mediaId}/original.{ext}`; prefixes are configurable.

use crate::ids::{JobId, MediaId};

/// The configured key prefixes.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Prefix of staged uploads.
    pub staging: String,
    /// Prefix of variants.
    pub media: String,
    /// Prefix of originals.
    pub originals: String,
}

impl Keys {
    /// Where a job's upload waits for its worker.
    pub fn staging(&self, job: &JobId) -> String {
        format!("{}/{job}", self.staging)
    }

    /// Where one variant of a media record lives.
    pub fn variant(
        &self,
        source_type: &str,
        source_id: &str,
        media: &MediaId,
        name: &str,
    ) -> String {
        format!(
            "{}/{source_type}/{source_id}/{media}/{name}.webp",
            self.media
        )
    }

    /// Where the stripped original of a media record lives.
    pub fn original(
        &self,
        source_type: &str,
        source_id: &str,
        media: &MediaId,
        ext: &str,
    ) -> String {
        format!(
            "{}/{source_type}/{source_id}/{media}/original.{ext}",
            self.originals
        )
    }

    /// The folders (variants, original) that hold every object of one media id.
    pub fn media_folders(
        &self,
        source_type: &str,
        source_id: &str,
        media: &MediaId,
    ) -> [String; 2] {
        [
            format!("{}/{source_type}/{source_id}/{media}", self.media),
            format!("{}/{source_type}/{source_id}/{media}", self.originals),
        ]
    }

    /// The job id a staging key names, if it is one.
    pub fn job_of_staging_key(&self, key: &str) -> Option<JobId> {
        let id = key.strip_prefix(&self.staging)?.strip_prefix('/')?;
        (!id.is_empty() && !id.contains('/')).then(|| JobId::from_string(id))
    }

    /// Whether a key may be served publicly: media and originals, never staging.
    pub fn is_public(&self, key: &str) -> bool {
        [&self.media, &self.originals].iter().any(|p| {
            key.strip_prefix(p.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// The `Content-Type` of a stored object, from its extension (keys are ours, so this is exact).
pub fn content_type(key: &str) -> &'static str {
    match key.rsplit_once('.').map(|(_, ext)| ext) {
        Some("webp") => "image/webp",
        Some("jpg") => "image/jpeg",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("avif") => "image/avif",
        Some("heic") => "image/heic",
        Some("tif") => "image/tiff",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys {
            staging: "staging".into(),
            media: "media".into(),
            originals: "originals".into(),
        }
    }

    #[test]
    fn keys_follow_the_spec() {
        let m = MediaId::from_string("med_1");
        assert_eq!(
            keys().variant("avatar", "u1", &m, "xs"),
            "media/avatar/u1/med_1/xs.webp"
        );
        assert_eq!(
            keys().original("avatar", "u1", &m, "jpg"),
            "originals/avatar/u1/med_1/original.jpg"
        );
        assert_eq!(keys().staging(&JobId::from_string("j1")), "staging/j1");
        assert_eq!(
            keys().job_of_staging_key("staging/j1"),
            Some(JobId::from_string("j1"))
        );
    }

    #[test]
    fn staging_is_never_public() {
        assert!(keys().is_public("media/a/b/c/xs.webp"));
        assert!(!keys().is_public("staging/j1"));
        assert!(!keys().is_public("mediax/a"));
    }
}
