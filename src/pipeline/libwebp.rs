//! Lossy WebP encoding through libwebp's advanced API: the one module allowed `unsafe`.
//!
//! libwebp 1.6 (built from source by `libwebp-sys` 0.14; sharp ships the same version) with its
//! SSE2 and SSE4.1 kernels, which libwebp picks at run time. Its AVX2 kernels serve lossless
//! coding only, which we never do, so nothing is compiled with `-mavx2` (that would make the
//! whole library need an AVX2 CPU).
//! The `webp` crate pins libwebp 1.3.1 and cannot be linked beside 1.6, hence this wrapper.
//!
//! Every C object lives in a guard that frees it on drop, so an early return (a refused
//! picture, a stopped encode) leaks nothing.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;

use libwebp_sys as sys;

use super::stop::Stop;

/// The pixels of one picture, 8 bits a sample, rows packed.
#[derive(Debug, Clone, Copy)]
pub enum Pixels<'a> {
    /// Red, green, blue.
    Rgb(&'a [u8]),
    /// Red, green, blue, alpha (not premultiplied).
    Rgba(&'a [u8]),
}

impl Pixels<'_> {
    fn channels(self) -> usize {
        match self {
            Self::Rgb(_) => 3,
            Self::Rgba(_) => 4,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Self::Rgb(bytes) | Self::Rgba(bytes) => bytes,
        }
    }
}

/// Why libwebp did not encode a picture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The pixel buffer does not hold `width × height` pixels, or a side is 0 or over 16,383.
    #[error("a {width}×{height} picture needs {needed} bytes of pixels, not {given}")]
    Size {
        /// The picture's width.
        width: u32,
        /// The picture's height.
        height: u32,
        /// Bytes the size asks for.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// The owner of the job raised its stop flag while the picture was being encoded.
    #[error("stopped")]
    Stopped,
    /// libwebp refused the picture or the settings; its error code, in words.
    #[error("{0}")]
    Libwebp(String),
}

/// The encoder version as libwebp reports it: `(major, minor, revision)`.
pub fn version() -> (u8, u8, u8) {
    // SAFETY: a pure function of the linked library, no arguments.
    let packed = unsafe { sys::WebPGetEncoderVersion() };
    let [_, major, minor, revision] = packed.to_be_bytes();
    (major, minor, revision)
}

/// Encodes `pixels` (`width`×`height`) as lossy WebP at `quality` (0–100) with libwebp's
/// `method` (effort, 0–6), giving up with `Stopped` soon after `stop` is raised.
///
/// # Errors
/// `Size` for a buffer that does not match the size, `Stopped`, or libwebp's refusal.
pub fn encode(
    pixels: Pixels<'_>,
    width: u32,
    height: u32,
    quality: f32,
    method: i32,
    stop: &Stop,
) -> Result<Vec<u8>, EncodeError> {
    let row = width as usize * pixels.channels();
    let needed = row.saturating_mul(height as usize);
    let max_side = sys::WEBP_MAX_DIMENSION;
    if pixels.bytes().len() != needed || width == 0 || height == 0 || width.max(height) > max_side {
        return Err(EncodeError::Size {
            width,
            height,
            needed,
            given: pixels.bytes().len(),
        });
    }
    let config = Config::new(quality, method)?;
    let mut picture = Picture::new(width, height)?;
    picture.import(pixels, row)?;
    let mut output = Writer::new();
    picture.encode(&config, &mut output, stop)?;
    Ok(output.bytes().to_vec())
}

/// A checked `WebPConfig`.
struct Config(sys::WebPConfig);

impl Config {
    fn new(quality: f32, method: i32) -> Result<Self, EncodeError> {
        let mut config = MaybeUninit::<sys::WebPConfig>::uninit();
        // SAFETY: WebPConfigInitInternal writes every field of the struct it is given, and
        // returns 0 (leaving it unusable) only for an ABI mismatch, checked before reading it.
        let config = unsafe {
            if sys::WebPConfigInitInternal(
                config.as_mut_ptr(),
                sys::WebPPreset::WEBP_PRESET_DEFAULT,
                quality,
                sys::WEBP_ENCODER_ABI_VERSION as c_int,
            ) == 0
            {
                return Err(EncodeError::Libwebp("libwebp version mismatch".into()));
            }
            config.assume_init()
        };
        let mut config = Self(config);
        config.0.quality = quality.clamp(0.0, 100.0);
        config.0.method = method.clamp(0, 6);
        // SAFETY: the config was initialised above; the call only reads it.
        if unsafe { sys::WebPValidateConfig(&config.0) } == 0 {
            return Err(EncodeError::Libwebp("invalid settings".into()));
        }
        Ok(config)
    }
}

/// A `WebPPicture` whose pixel memory libwebp owns, freed on drop.
struct Picture(sys::WebPPicture);

impl Picture {
    fn new(width: u32, height: u32) -> Result<Self, EncodeError> {
        let mut picture = MaybeUninit::<sys::WebPPicture>::uninit();
        // SAFETY: as for the config: every field is written unless the ABI check fails.
        let picture = unsafe {
            if sys::WebPPictureInitInternal(
                picture.as_mut_ptr(),
                sys::WEBP_ENCODER_ABI_VERSION as c_int,
            ) == 0
            {
                return Err(EncodeError::Libwebp("libwebp version mismatch".into()));
            }
            picture.assume_init()
        };
        let mut picture = Self(picture);
        // YUV 4:2:0, the lossy encoder's input: importing converts straight to it.
        picture.0.use_argb = 0;
        // Both fit: `encode` checked them against WEBP_MAX_DIMENSION.
        picture.0.width = width as c_int;
        picture.0.height = height as c_int;
        Ok(picture)
    }

    /// Copies `pixels` (rows of `row` bytes) into libwebp's own buffers.
    fn import(&mut self, pixels: Pixels<'_>, row: usize) -> Result<(), EncodeError> {
        let stride =
            c_int::try_from(row).map_err(|_| EncodeError::Libwebp("row too long".into()))?;
        // SAFETY: `encode` checked that the buffer holds exactly height rows of `row` bytes,
        // which is all libwebp reads; it copies them and keeps no pointer to them.
        let ok = unsafe {
            match pixels {
                Pixels::Rgb(rgb) => sys::WebPPictureImportRGB(&mut self.0, rgb.as_ptr(), stride),
                Pixels::Rgba(rgba) => {
                    sys::WebPPictureImportRGBA(&mut self.0, rgba.as_ptr(), stride)
                }
            }
        };
        if ok == 0 {
            return Err(self.error());
        }
        Ok(())
    }

    /// Encodes into `output`, asking `stop` at each of libwebp's progress reports.
    fn encode(
        &mut self,
        config: &Config,
        output: &mut Writer,
        stop: &Stop,
    ) -> Result<(), EncodeError> {
        self.0.writer = Some(sys::WebPMemoryWrite);
        self.0.custom_ptr = (&raw mut output.0).cast::<c_void>();
        self.0.progress_hook = Some(keep_going);
        self.0.user_data = std::ptr::from_ref(stop).cast_mut().cast::<c_void>();
        // SAFETY: the picture holds imported pixels; `custom_ptr` points at an initialised
        // WebPMemoryWriter and `user_data` at a Stop, both borrowed for the whole call and
        // used only during it (the pointers are cleared before returning).
        let ok = unsafe { sys::WebPEncode(&config.0, &mut self.0) };
        self.0.custom_ptr = std::ptr::null_mut();
        self.0.user_data = std::ptr::null_mut();
        if ok == 0 {
            if self.0.error_code == sys::WebPEncodingError::VP8_ENC_ERROR_USER_ABORT {
                return Err(EncodeError::Stopped);
            }
            return Err(self.error());
        }
        Ok(())
    }

    fn error(&self) -> EncodeError {
        EncodeError::Libwebp(format!("{:?}", self.0.error_code))
    }
}

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: the picture was initialised by WebPPictureInitInternal; freeing a picture
        // that never imported pixels is allowed.
        unsafe { sys::WebPPictureFree(&mut self.0) }
    }
}

/// libwebp's progress hook: 0 (abort) once the job's stop flag is raised.
extern "C" fn keep_going(_percent: c_int, picture: *const sys::WebPPicture) -> c_int {
    // SAFETY: libwebp passes the picture being encoded, whose `user_data` `Picture::encode`
    // set to a Stop that outlives the call.
    let stop = unsafe { &*(*picture).user_data.cast::<Stop>() };
    c_int::from(stop.check().is_ok())
}

/// Where the encoded bytes go: a buffer libwebp grows, freed on drop.
struct Writer(sys::WebPMemoryWriter);

impl Writer {
    fn new() -> Self {
        let mut writer = MaybeUninit::<sys::WebPMemoryWriter>::uninit();
        // SAFETY: WebPMemoryWriterInit sets every field (an empty buffer).
        Self(unsafe {
            sys::WebPMemoryWriterInit(writer.as_mut_ptr());
            writer.assume_init()
        })
    }

    fn bytes(&self) -> &[u8] {
        if self.0.mem.is_null() {
            return &[];
        }
        // SAFETY: libwebp wrote `size` bytes at `mem`, which stays allocated until drop.
        unsafe { std::slice::from_raw_parts(self.0.mem, self.0.size) }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // SAFETY: the writer was initialised; clearing frees its buffer (if any) once.
        unsafe { sys::WebPMemoryWriterClear(&mut self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32, channels: usize) -> Vec<u8> {
        (0..width as usize * height as usize * channels)
            .map(|i| (i % 251) as u8)
            .collect()
    }

    fn decoded_size(webp: &[u8]) -> Option<(u32, u32)> {
        image::load_from_memory_with_format(webp, image::ImageFormat::WebP)
            .ok()
            .map(|image| (image.width(), image.height()))
    }

    #[test]
    fn is_libwebp_1_6() {
        assert_eq!(version().0, 1);
        assert!(version().1 >= 6, "{:?}", version());
    }

    #[test]
    fn encodes_rgb_and_rgba() {
        let stop = Stop::default();
        let rgb = gradient(37, 19, 3);
        let webp = encode(Pixels::Rgb(&rgb), 37, 19, 80.0, 4, &stop).unwrap();
        assert_eq!(&webp[..4], b"RIFF");
        assert_eq!(decoded_size(&webp), Some((37, 19)));
        let rgba = gradient(8, 300, 4);
        let webp = encode(Pixels::Rgba(&rgba), 8, 300, 80.0, 2, &stop).unwrap();
        assert_eq!(decoded_size(&webp), Some((8, 300)));
    }

    #[test]
    fn refuses_a_buffer_of_the_wrong_size() {
        let rgb = gradient(10, 10, 3);
        let err = encode(Pixels::Rgb(&rgb[1..]), 10, 10, 80.0, 4, &Stop::default());
        assert!(matches!(
            err,
            Err(EncodeError::Size {
                needed: 300,
                given: 299,
                ..
            })
        ));
        let err = encode(Pixels::Rgb(&[]), 0, 0, 80.0, 4, &Stop::default());
        assert!(matches!(err, Err(EncodeError::Size { .. })));
        let wide = vec![0; 16_384 * 3];
        let err = encode(Pixels::Rgb(&wide), 16_384, 1, 80.0, 4, &Stop::default());
        assert!(matches!(err, Err(EncodeError::Size { .. })));
    }

    #[test]
    fn a_raised_stop_aborts_the_encode() {
        let stop = Stop::default();
        stop.stop();
        let rgb = gradient(512, 512, 3);
        let err = encode(Pixels::Rgb(&rgb), 512, 512, 80.0, 4, &stop);
        assert_eq!(err, Err(EncodeError::Stopped));
    }

    #[test]
    fn higher_quality_costs_more_bytes() {
        let rgb = gradient(256, 256, 3);
        let stop = Stop::default();
        let low = encode(Pixels::Rgb(&rgb), 256, 256, 20.0, 4, &stop).unwrap();
        let high = encode(Pixels::Rgb(&rgb), 256, 256, 95.0, 4, &stop).unwrap();
        assert!(high.len() > low.len(), "{} vs {}", high.len(), low.len());
    }
}
