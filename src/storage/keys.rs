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

    /// The stored object a public request names, as its canonical key: trailing slashes
    /// dropped, every segment in the alphabet our keys are made of (`[A-Za-z0-9._-]`, which
    /// leaves out the `#n` of a local store's temporary files), under the media or originals
    /// prefix and with an image extension. `None` for anything we never store publicly.
    pub fn public_object(&self, requested: &str) -> Option<String> {
        let key = requested.trim_end_matches('/');
        let segment_ok = |segment: &str| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        let ok = key.split('/').all(segment_ok)
            && self.is_public(key)
            && content_type(key) != "application/octet-stream";
        ok.then(|| key.to_owned())
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
    fn public_requests_resolve_to_our_keys_or_nothing() {
        let k = keys();
        assert_eq!(
            k.public_object("media/a/u1/med_1/md.webp/").as_deref(),
            Some("media/a/u1/med_1/md.webp")
        );
        for bad in [
            "media/a/u1/med_1/x#1",
            "media/a/u1/med_1/md.webp#1",
            "media/a//med_1/md.webp",
            "media/a/../b/md.webp",
            "media/a/u1/med_1/md",
            "staging/j1.webp",
            "media/a/u1/med_1/m d.webp",
        ] {
            assert_eq!(k.public_object(bad), None, "{bad}");
        }
    }

    #[test]
    fn staging_is_never_public() {
        assert!(keys().is_public("media/a/b/c/xs.webp"));
        assert!(!keys().is_public("staging/j1"));
        assert!(!keys().is_public("mediax/a"));
    }
}
