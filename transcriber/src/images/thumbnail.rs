//! One thumbnail: the header is read first and an image over the pixel limit (a decompression
//! bomb: a small file that would decode to gigabytes) is refused before anything is decoded;
//! the decoder also runs under an allocation limit. The picture is turned upright by its EXIF
//! orientation, scaled to fit a bounding box, and encoded as JPEG from the pixels alone, so no
//! metadata (EXIF, GPS, ICC) survives.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    #[error("image of {width}×{height} pixels is over the limit of {limit}")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("image does not decode: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Width × height above which an image is refused unread.
    pub max_pixels: u64,
    /// The thumbnail fits in this many pixels each way.
    pub max_side: u32,
}

pub struct Thumb {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

pub fn make(bytes: &[u8], limits: Bounds) -> Result<Thumb, ThumbnailError> {
    let corrupt = |e: image::ImageError| ThumbnailError::Corrupt(e.to_string());
    // The header alone (imagesize reads no pixel data, unlike a decoder's own setup).
    let size = imagesize::blob_size(bytes)
        .map_err(|e| ThumbnailError::Corrupt(format!("unreadable header: {e}")))?;
    let (width, height) = (
        u32::try_from(size.width).unwrap_or(u32::MAX),
        u32::try_from(size.height).unwrap_or(u32::MAX),
    );
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(ThumbnailError::TooManyPixels {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ThumbnailError::Corrupt(e.to_string()))?;
    let mut bounds = Limits::default();
    // Four bytes a pixel, and room for the decoder's own buffers.
    bounds.max_alloc = Some(limits.max_pixels * 4 + 64 * 1024 * 1024);
    bounds.max_image_width = Some(width);
    bounds.max_image_height = Some(height);
    reader.limits(bounds);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let orientation = decoder.orientation().map_err(corrupt)?;
    let mut picture = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    picture.apply_orientation(orientation);
    let small = picture
        .thumbnail(limits.max_side, limits.max_side)
        .to_rgb8();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 82)
        .encode_image(&small)
        .map_err(corrupt)?;
    Ok(Thumb {
        width: small.width(),
        height: small.height(),
        jpeg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Bounds = Bounds {
        max_pixels: 40_000_000,
        max_side: 32,
    };

    /// A 60×20 JPEG (wide), with an EXIF block saying "rotate 90° clockwise to view"
    /// (orientation 6) and a camera make, spliced in after the start-of-image marker.
    fn jpeg_with_exif() -> Vec<u8> {
        let img = image::RgbImage::from_fn(60, 20, |x, _| image::Rgb([(x * 4) as u8, 0, 0]));
        let mut plain = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut plain)
            .encode_image(&img)
            .unwrap();
        // TIFF, little-endian: 2 entries (orientation = 6, make = "Cam").
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&2u16.to_le_bytes());
        tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
        tiff.extend_from_slice(&[0x0F, 0x01, 2, 0, 4, 0, 0, 0, b'C', b'a', b'm', 0]);
        tiff.extend_from_slice(&0u32.to_le_bytes());
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = plain[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&plain[2..]);
        out
    }

    #[test]
    fn turns_the_picture_upright_and_strips_metadata() {
        let source = jpeg_with_exif();
        assert!(source.windows(4).any(|w| w == b"Exif"));
        let t = make(&source, LIMITS).unwrap();
        // 60×20 rotated is 20×60, scaled to fit 32: about 11×32.
        assert_eq!(t.height, 32, "{}×{}", t.width, t.height);
        assert!(t.width < t.height);
        assert!(!t.jpeg.windows(4).any(|w| w == b"Exif"));
        assert!(!t.jpeg.windows(3).any(|w| w == b"Cam"));
        let back = image::load_from_memory(&t.jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (t.width, t.height));
    }

    #[test]
    fn refuses_a_bomb_before_decoding_and_garbage_cleanly() {
        // A PNG header claiming 100000×100000 and nothing behind it: refused by its header.
        let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
        png.extend_from_slice(b"IHDR");
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 6, 0, 0, 0]);
        let crc = crc32(&png[12..]);
        png.extend_from_slice(&crc.to_be_bytes());
        let bomb = make(&png, LIMITS);
        assert!(
            matches!(
                bomb,
                Err(ThumbnailError::TooManyPixels { width: 100_000, .. })
            ),
            "{:?}",
            bomb.err()
        );
        assert!(matches!(
            make(b"not an image", LIMITS),
            Err(ThumbnailError::Corrupt(_))
        ));
        let mut cut = jpeg_with_exif();
        cut.truncate(cut.len() / 3);
        assert!(make(&cut, LIMITS).is_err());
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for b in bytes {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
