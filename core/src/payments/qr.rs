//! Renders a BR Code as the QR image the payer scans, inlined as a PNG data URL so the front
//! end needs no second request.

use std::io::Cursor;

use base64::Engine;
use image::{ImageFormat, Luma};
use qrcode::{EcLevel, QrCode};

/// Pixels per QR module: a typical PIX code (version 8–10) comes out around 400 px wide.
const MODULE_PIXELS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("payload does not fit in a QR code: {0}")]
    TooLong(#[from] qrcode::types::QrError),
    #[error("encoding PNG: {0}")]
    Png(#[from] image::ImageError),
}

/// `data:image/png;base64,…` of `payload` as a QR code with medium error correction and the
/// standard 4-module quiet zone.
pub fn png_data_url(payload: &str) -> Result<String, QrError> {
    let png = png_bytes(payload)?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

pub fn png_bytes(payload: &str) -> Result<Vec<u8>, QrError> {
    let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)?;
    let image = code
        .render::<Luma<u8>>()
        .quiet_zone(true)
        .module_dimensions(MODULE_PIXELS, MODULE_PIXELS)
        .build();
    let mut png = Vec::new();
    image.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use qrcode::Color;

    use super::*;

    const CODE: &str = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000520400005303986540510.005802BR5913Fulano de Tal6008BRASILIA62130509PEDIDO1236304902A";

    #[test]
    fn the_data_url_holds_a_png_whose_modules_are_the_qr_code_of_the_payload() {
        let url = png_data_url(CODE).unwrap();
        let encoded = url.strip_prefix("data:image/png;base64,").unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

        let image = image::load_from_memory_with_format(&png, ImageFormat::Png)
            .unwrap()
            .to_luma8();
        let expected = QrCode::with_error_correction_level(CODE.as_bytes(), EcLevel::M).unwrap();
        let modules = expected.width() as u32;
        let quiet_zone = 4;
        assert_eq!(image.width(), (modules + 2 * quiet_zone) * MODULE_PIXELS);
        assert_eq!(image.height(), image.width());

        // Sample the centre of every module and compare with the code's own matrix.
        let colors = expected.to_colors();
        for y in 0..modules {
            for x in 0..modules {
                let px = (x + quiet_zone) * MODULE_PIXELS + MODULE_PIXELS / 2;
                let py = (y + quiet_zone) * MODULE_PIXELS + MODULE_PIXELS / 2;
                let dark = image.get_pixel(px, py).0[0] < 128;
                let want = colors[(y * modules + x) as usize] == Color::Dark;
                assert_eq!(dark, want, "module ({x}, {y})");
            }
        }
        // The quiet zone is white.
        assert!(image.get_pixel(1, 1).0[0] > 128);
    }

    #[test]
    fn a_payload_too_long_for_any_qr_version_is_an_error() {
        assert!(matches!(
            png_data_url(&"9".repeat(8000)),
            Err(QrError::TooLong(_))
        ));
    }
}
