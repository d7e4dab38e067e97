//! Static assets both servers serve beside their pages: the favicon (a
//! 32x32 icon, the "S" of Sportello on the institute's blue). The staff
//! pages (API server) and the video rooms (gateway) link it with
//! `<link rel="icon">`, and browsers that ask `/favicon.ico` on their own
//! get it rather than a 404. It is not part of the API's description.

use actix_web::http::header;
use actix_web::HttpResponse;

/// The icon: an ICO holding one PNG (`templates/favicon.ico`).
pub const FAVICON: &[u8] = include_bytes!("../../templates/favicon.ico");

/// `GET /favicon.ico`. The same for everyone and changed only by a release:
/// cached a day, by shared caches too (the edge leaves a chosen
/// `Cache-Control` alone and adds `nosniff`).
pub async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/x-icon")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(FAVICON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_favicon_is_an_icon_holding_a_png() {
        // ICONDIR: reserved 0, type 1 (icon), one image.
        assert_eq!(&FAVICON[..6], &[0, 0, 1, 0, 1, 0]);
        let offset = u32::from_le_bytes([FAVICON[18], FAVICON[19], FAVICON[20], FAVICON[21]]);
        let png = &FAVICON[offset as usize..];
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    }
}
