//! Identifies what a file is from its first bytes, never from its name or declared type.
//!
//! Binary signatures come from the `infer` crate, except ISO-BMFF (`ftyp`) files, whose brands
//! `format::heif` reads to tell AVIF from HEIC/HEIF. Text is classified too (SVG, HTML, XML, plain
//! text) so that refusals can say what was uploaded. Limits and decoding are left to others.

use super::{ImageFormat, PipelineError, format};

/// What the bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// An image format the pipeline knows (it may still be disabled by configuration).
    Image(ImageFormat),
    /// Anything else, as a MIME type; `application/octet-stream` when unknown.
    Other(&'static str),
}

impl Sniffed {
    /// The MIME type of what was sniffed.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Image(format) => format.mime(),
            Self::Other(mime) => mime,
        }
    }
}

/// How far into the file text sniffing looks.
const TEXT_WINDOW: usize = 4096;

/// Sniffs the bytes; an empty input is `Other("application/octet-stream")`.
pub fn detect(bytes: &[u8]) -> Sniffed {
    if let Some(format) = format::heif::brand(bytes) {
        return Sniffed::Image(format);
    }
    if let Some(kind) = infer::get(bytes) {
        let format = match kind.mime_type() {
            "image/jpeg" => Some(ImageFormat::Jpeg),
            "image/png" | "image/apng" => Some(ImageFormat::Png),
            "image/webp" => Some(ImageFormat::Webp),
            "image/gif" => Some(ImageFormat::Gif),
            "image/tiff" => Some(ImageFormat::Tiff),
            "image/avif" => Some(ImageFormat::Avif),
            "image/heif" | "image/heic" => Some(ImageFormat::Heic),
            _ => None,
        };
        if let Some(format) = format {
            return Sniffed::Image(format);
        }
        if !kind.mime_type().starts_with("text/") && kind.mime_type() != "application/xml" {
            return Sniffed::Other(kind.mime_type());
        }
    }
    Sniffed::Other(text_kind(bytes))
}

/// Sniffs the bytes and insists on an image format.
///
/// # Errors
/// `Empty` for no bytes, `UnsupportedFormat` for images in other formats (SVG, BMP, ...),
/// `NotAnImage` for everything else.
pub fn image_format(bytes: &[u8]) -> Result<ImageFormat, PipelineError> {
    if bytes.is_empty() {
        return Err(PipelineError::Empty);
    }
    match detect(bytes) {
        Sniffed::Image(format) => Ok(format),
        Sniffed::Other(mime) if mime.starts_with("image/") => {
            Err(PipelineError::UnsupportedFormat { mime })
        }
        Sniffed::Other(mime) => Err(PipelineError::NotAnImage { mime }),
    }
}

/// A short human name for a MIME type, for messages ("SVG", "HTML", "plain text", ...).
pub fn describe(mime: &str) -> String {
    let known = match mime {
        "image/svg+xml" => "SVG",
        "text/html" => "HTML",
        "text/plain" => "plain text",
        "text/xml" | "application/xml" => "XML",
        "application/octet-stream" => "unrecognised data",
        "image/bmp" => "BMP",
        "image/jp2" | "image/jpx" | "image/jpm" => "JPEG 2000",
        "image/vnd.microsoft.icon" | "image/x-icon" => "ICO",
        "image/vnd.adobe.photoshop" => "PSD",
        "image/jxl" => "JPEG XL",
        _ => {
            let known = [
                ImageFormat::Jpeg,
                ImageFormat::Png,
                ImageFormat::Webp,
                ImageFormat::Gif,
                ImageFormat::Avif,
                ImageFormat::Heic,
                ImageFormat::Tiff,
            ]
            .into_iter()
            .find(|format| format.mime() == mime);
            return match known {
                Some(format) => format.name().to_owned(),
                None => mime.to_owned(),
            };
        }
    };
    known.to_owned()
}

/// Classifies text: SVG, HTML, XML, plain text, or unknown binary.
fn text_kind(bytes: &[u8]) -> &'static str {
    let window = &bytes[..bytes.len().min(TEXT_WINDOW)];
    let window = window.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(window);
    let lower = window.to_ascii_lowercase();
    let start = lower
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(lower.len());
    let head = &lower[start..];
    let contains = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);

    if head.starts_with(b"<svg") || (head.starts_with(b"<") && contains(b"<svg")) {
        // An HTML page that merely embeds an <svg> element is still HTML.
        if !(head.starts_with(b"<!doctype html") || head.starts_with(b"<html")) {
            return "image/svg+xml";
        }
    }
    if [
        &b"<!doctype html"[..],
        b"<html",
        b"<head",
        b"<body",
        b"<script",
        b"<iframe",
        b"<!--",
    ]
    .iter()
    .any(|tag| head.starts_with(tag))
        || (head.starts_with(b"<") && contains(b"<html"))
    {
        return "text/html";
    }
    if head.starts_with(b"<?xml") {
        return "text/xml";
    }
    if is_text(window) {
        return "text/plain";
    }
    "application/octet-stream"
}

/// Whether the bytes read as UTF-8 text without control characters (a cut final character is fine).
fn is_text(bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return false;
    }
    let valid = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        // A multi-byte character cut by the window is still text.
        Err(err) if err.error_len().is_none() && bytes.len() - err.valid_up_to() < 4 => {
            match std::str::from_utf8(&bytes[..err.valid_up_to()]) {
                Ok(text) => text,
                Err(_) => return false,
            }
        }
        Err(_) => return false,
    };
    valid
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t' | '\x0C'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len();
        let mut out = (size as u32).to_be_bytes().to_vec();
        out.extend_from_slice(b"ftyp");
        out.extend_from_slice(major);
        out.extend_from_slice(&[0, 0, 0, 0]);
        for brand in compatible {
            out.extend_from_slice(*brand);
        }
        out.extend_from_slice(&[0, 0, 0, 8, b'm', b'e', b't', b'a']);
        out
    }

    #[test]
    fn detects_by_magic_bytes() {
        let webp = b"RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0".to_vec();
        let cases: Vec<(&str, Vec<u8>, Sniffed)> = vec![
            (
                "jpeg",
                vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0],
                Sniffed::Image(ImageFormat::Jpeg),
            ),
            (
                "png",
                b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
                Sniffed::Image(ImageFormat::Png),
            ),
            ("webp", webp, Sniffed::Image(ImageFormat::Webp)),
            (
                "gif87",
                b"GIF87a\x01\0\x01\0\0\0\0".to_vec(),
                Sniffed::Image(ImageFormat::Gif),
            ),
            (
                "gif89",
                b"GIF89a\x01\0\x01\0\0\0\0".to_vec(),
                Sniffed::Image(ImageFormat::Gif),
            ),
            (
                "tiff le",
                b"II*\0\x08\0\0\0\0\0".to_vec(),
                Sniffed::Image(ImageFormat::Tiff),
            ),
            (
                "tiff be",
                b"MM\0*\0\0\0\x08\0\0".to_vec(),
                Sniffed::Image(ImageFormat::Tiff),
            ),
            (
                "avif",
                ftyp(b"avif", &[b"mif1", b"miaf"]),
                Sniffed::Image(ImageFormat::Avif),
            ),
            (
                "avif sequence",
                ftyp(b"avis", &[b"msf1"]),
                Sniffed::Image(ImageFormat::Avif),
            ),
            (
                "avif via compatible brand",
                ftyp(b"mif1", &[b"mif1", b"avif"]),
                Sniffed::Image(ImageFormat::Avif),
            ),
            (
                "heic",
                ftyp(b"heic", &[b"mif1", b"heic"]),
                Sniffed::Image(ImageFormat::Heic),
            ),
            (
                "heif generic",
                ftyp(b"mif1", &[b"mif1"]),
                Sniffed::Image(ImageFormat::Heic),
            ),
            (
                "mp4 is not an image",
                ftyp(b"isom", &[b"mp41"]),
                Sniffed::Other("video/mp4"),
            ),
            (
                "bmp",
                b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0".to_vec(),
                Sniffed::Other("image/bmp"),
            ),
            (
                "svg",
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec(),
                Sniffed::Other("image/svg+xml"),
            ),
            (
                "svg with prolog",
                b"\xEF\xBB\xBF  <?xml version=\"1.0\"?>\n<!DOCTYPE svg>\n<SVG onload=\"x()\">"
                    .to_vec(),
                Sniffed::Other("image/svg+xml"),
            ),
            (
                "html",
                b"<!DOCTYPE html><html><script>alert(1)</script>".to_vec(),
                Sniffed::Other("text/html"),
            ),
            (
                "html with inline svg",
                b"<html><body><svg></svg></body></html>".to_vec(),
                Sniffed::Other("text/html"),
            ),
            (
                "plain text",
                "hello, wörld\n".as_bytes().to_vec(),
                Sniffed::Other("text/plain"),
            ),
            (
                "binary junk",
                vec![0, 1, 2, 3, 0xFE, 0x80, 7],
                Sniffed::Other("application/octet-stream"),
            ),
            (
                "empty",
                Vec::new(),
                Sniffed::Other("application/octet-stream"),
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(detect(&bytes), want, "{name}");
        }
    }

    #[test]
    fn image_format_errors_name_the_content() {
        assert!(matches!(image_format(b""), Err(PipelineError::Empty)));
        let err = image_format(b"<svg/>").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("SVG is not accepted"));
        let err = image_format(b"just text").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("file is plain text (text/plain), not an image")
        );
        assert!(matches!(
            image_format(b"<html></html>"),
            Err(PipelineError::NotAnImage { mime: "text/html" })
        ));
    }
}
