//! ICC profiles in stripped originals: kept, because the original must display as it did, but
//! only when they parse as ICC, and then written anew from the parsed profile, so that bytes a
//! profile does not need (padding, unknown tags, anything appended) do not ride along.

use moxcms::ColorProfile;

/// The profile `bytes` parsed and written again; `None` when it does not parse or cannot be
/// written (the original then carries no profile).
pub fn rewrite(bytes: &[u8]) -> Option<Vec<u8>> {
    ColorProfile::new_from_slice(bytes).ok()?.encode().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_rewritten_without_what_rides_along() {
        let srgb = ColorProfile::new_srgb().encode().unwrap();
        let mut carrier = srgb.clone();
        carrier.extend_from_slice(b"GPS 51.5007 -0.1246 hidden payload");
        let clean = rewrite(&carrier).unwrap();
        assert!(!clean.windows(6).any(|w| w == b"hidden"));
        assert_eq!(
            ColorProfile::new_from_slice(&clean)
                .unwrap()
                .encode()
                .unwrap(),
            clean,
            "rewriting is stable"
        );
        assert_eq!(rewrite(b"not a profile at all"), None);
    }
}
