//! What an uploaded file really is: its kind from the first bytes
//! (`document::detect_kind`), then its structure parsed by a decoder of that
//! kind, so four JPEG magic bytes followed by HTML are not a JPEG; and the
//! name it is stored and served under ends with that kind's extension, so a
//! PDF sent as `ricevuta.html` is `ricevuta.pdf`.
//!
//! Parsing happens in memory with bounded allocation (no decompression
//! bombs): no I/O, like the rest of `domain`.

use std::io::Cursor;

use super::document::{detect_kind, FileKind};

/// Largest picture accepted, either side, in pixels (a 3 MB JPEG of a
/// document scanned at 600 dpi is well within).
pub const MAX_IMAGE_SIDE: usize = 12_000;
/// Memory a PNG decoder may take.
const PNG_MEMORY: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("the content is not a PDF, P7M, JPEG or PNG file")]
    UnknownKind,
    #[error("the content starts like a {kind} but is not a valid {kind}: {reason}")]
    Malformed { kind: &'static str, reason: String },
}

impl FileKind {
    /// The extension a file of this kind is stored and served with.
    pub fn extension(self) -> &'static str {
        match self {
            FileKind::Pdf => "pdf",
            FileKind::P7m => "p7m",
            FileKind::Jpeg => "jpg",
            FileKind::Png => "png",
        }
    }

    /// Extensions people use for this kind.
    fn accepts_extension(self, extension: &str) -> bool {
        match self {
            FileKind::Jpeg => matches!(extension, "jpg" | "jpeg"),
            other => extension == other.extension(),
        }
    }

    fn label(self) -> &'static str {
        match self {
            FileKind::Pdf => "PDF",
            FileKind::P7m => "P7M",
            FileKind::Jpeg => "JPEG",
            FileKind::Png => "PNG",
        }
    }
}

/// The kind of `bytes`, once a decoder of that kind has read them whole.
pub fn check_content(bytes: &[u8]) -> Result<FileKind, ContentError> {
    let kind = detect_kind(bytes).ok_or(ContentError::UnknownKind)?;
    let malformed = |reason: String| ContentError::Malformed {
        kind: kind.label(),
        reason,
    };
    match kind {
        FileKind::Pdf => check_pdf(bytes).map_err(malformed)?,
        FileKind::Png => check_png(bytes).map_err(malformed)?,
        FileKind::Jpeg => check_jpeg(bytes).map_err(malformed)?,
        // A CMS envelope: its DER framing was recognised; the signature is
        // verified when the document is registered, not here.
        FileKind::P7m => {}
    }
    Ok(kind)
}

fn check_pdf(bytes: &[u8]) -> Result<(), String> {
    let document = lopdf::Document::load_mem(bytes).map_err(|e| e.to_string())?;
    if document.get_pages().is_empty() {
        return Err("it has no pages".into());
    }
    Ok(())
}

fn check_png(bytes: &[u8]) -> Result<(), String> {
    let limits = png::Limits { bytes: PNG_MEMORY };
    let decoder = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let info = reader.info();
    if info.width as usize > MAX_IMAGE_SIDE || info.height as usize > MAX_IMAGE_SIDE {
        return Err(format!(
            "{}×{} pixels, more than {MAX_IMAGE_SIDE} a side",
            info.width, info.height
        ));
    }
    let size = reader
        .output_buffer_size()
        .ok_or("its size cannot be computed")?;
    let mut frame = vec![0; size];
    reader.next_frame(&mut frame).map_err(|e| e.to_string())?;
    Ok(())
}

fn check_jpeg(bytes: &[u8]) -> Result<(), String> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .set_max_width(MAX_IMAGE_SIDE)
        .set_max_height(MAX_IMAGE_SIDE)
        .set_strict_mode(true);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode().map_err(|e| e.to_string())?;
    Ok(())
}

/// `name` (already sanitised) as stored and served: kept when its extension
/// is one of `kind`'s, otherwise with its last extension replaced by the
/// kind's (`ricevuta.html` → `ricevuta.pdf`), or the kind's added when it
/// has none (`scansione` → `scansione.jpg`) or the file is a signed
/// envelope (`modulo.pdf` → `modulo.pdf.p7m`).
pub fn named_for(name: &str, kind: FileKind) -> String {
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => (stem, Some(extension)),
        _ => (name, None),
    };
    match extension {
        Some(extension) if kind.accepts_extension(&extension.to_ascii_lowercase()) => {
            name.to_owned()
        }
        // A signed envelope keeps the name of what it signs: `modulo.pdf.p7m`.
        _ if kind == FileKind::P7m => format!("{name}.p7m"),
        _ => format!("{stem}.{}", kind.extension()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-page PDF with a correct cross-reference table.
    fn minimal_pdf() -> Vec<u8> {
        b"%PDF-1.7\n1 0 obj\n<</Type/Catalog/Pages 2 0 R>>\nendobj\n2 0 obj\n\
          <</Type/Pages/Kids[3 0 R]/Count 1>>\nendobj\n3 0 obj\n\
          <</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>\nendobj\nxref\n0 4\n\
          0000000000 65535 f \n0000000009 00000 n \n0000000054 00000 n \n\
          0000000105 00000 n \ntrailer\n<</Size 4/Root 1 0 R>>\nstartxref\n170\n%%EOF\n"
            .to_vec()
    }

    fn png_of(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Grayscale);
        let mut writer = encoder.write_header().unwrap();
        writer
            .write_image_data(&vec![128; (width * height) as usize])
            .unwrap();
        writer.finish().unwrap();
        bytes
    }

    #[test]
    fn real_files_pass_and_their_kind_is_told() {
        assert_eq!(check_content(&minimal_pdf()), Ok(FileKind::Pdf));
        assert_eq!(check_content(&png_of(4, 3)), Ok(FileKind::Png));
    }

    #[test]
    fn magic_bytes_followed_by_something_else_are_refused() {
        let mut fake_jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
        fake_jpeg.extend_from_slice(b"<html><script>alert(1)</script></html>");
        assert!(matches!(
            check_content(&fake_jpeg),
            Err(ContentError::Malformed { kind: "JPEG", .. })
        ));
        let mut fake_pdf = b"%PDF-1.7\n".to_vec();
        fake_pdf.extend_from_slice(b"<html><body>ciao</body></html>");
        assert!(matches!(
            check_content(&fake_pdf),
            Err(ContentError::Malformed { kind: "PDF", .. })
        ));
        let mut truncated_png = png_of(4, 3);
        truncated_png.truncate(40);
        assert!(matches!(
            check_content(&truncated_png),
            Err(ContentError::Malformed { kind: "PNG", .. })
        ));
        assert_eq!(check_content(b"<html>"), Err(ContentError::UnknownKind));
    }

    #[test]
    fn names_end_with_the_detected_kind() {
        assert_eq!(named_for("ricevuta.html", FileKind::Pdf), "ricevuta.pdf");
        assert_eq!(named_for("ricevuta.PDF", FileKind::Pdf), "ricevuta.PDF");
        assert_eq!(named_for("foto.jpeg", FileKind::Jpeg), "foto.jpeg");
        assert_eq!(named_for("foto.png", FileKind::Jpeg), "foto.jpg");
        assert_eq!(named_for("scansione", FileKind::Png), "scansione.png");
        assert_eq!(named_for("modulo.pdf.p7m", FileKind::P7m), "modulo.pdf.p7m");
        assert_eq!(named_for("modulo.pdf", FileKind::P7m), "modulo.pdf.p7m");
    }
}
