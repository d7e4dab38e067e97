//! The registration receipt (*ricevuta di protocollazione*) as a PDF: the
//! signature, when and by whom, and every registered file with its SHA-256.

use printpdf::{
    BuiltinFont, Mm, Op, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt, TextItem,
};

use crate::domain::cron::TIME_ZONE;
use crate::domain::protocol::registration_date;
use crate::store::protocol::Registration;

/// Lines per A4 page at the body's line height.
const LINES_PER_PAGE: usize = 48;

/// The receipt's lines, separate from the layout so they can be checked.
/// No parentheses: the PDF writer would hex-encode such lines, and the
/// receipt's text should stay searchable as is.
pub fn receipt_lines(registration: &Registration, annulment: Option<&str>) -> Vec<String> {
    let local = registration.registered_at.with_timezone(&TIME_ZONE);
    let mut lines = vec![
        format!("Segnatura: {}", registration.signature),
        format!(
            "Registrato il {} alle {}, ora di Roma",
            registration_date(registration.registered_at).format("%d/%m/%Y"),
            local.format("%H:%M:%S")
        ),
        format!(
            "AOO: {}  Anno: {}  Numero: {:07}",
            registration.aoo, registration.year, registration.number
        ),
        format!("Oggetto: {}", registration.subject),
        String::new(),
        format!("Documenti registrati: {}", registration.files.len()),
    ];
    for (index, file) in registration.files.iter().enumerate() {
        lines.push(format!("{}. {} - {} byte", index + 1, file.name, file.size));
        lines.push(format!("   SHA-256: {}", file.sha256));
    }
    if let Some(reason) = annulment {
        lines.push(String::new());
        lines.push(format!("REGISTRAZIONE ANNULLATA: {reason}"));
    }
    lines
}

pub fn receipt_pdf(registration: &Registration, annulment: Option<&str>) -> Vec<u8> {
    lines_pdf(
        "INPS - Ricevuta di protocollazione",
        &receipt_lines(registration, annulment),
    )
}

/// An A4 PDF with `title` in bold and `lines` below it, paginated. Also
/// used for appointment receipts.
pub fn lines_pdf(title: &str, lines: &[String]) -> Vec<u8> {
    let pages = lines
        .chunks(LINES_PER_PAGE)
        .enumerate()
        .map(|(page, chunk)| {
            let mut ops = vec![
                Op::StartTextSection,
                Op::SetTextCursor {
                    pos: Point::new(Mm(20.0), Mm(277.0)),
                },
            ];
            if page == 0 {
                ops.extend([
                    Op::SetFont {
                        font: PdfFontHandle::Builtin(BuiltinFont::HelveticaBold),
                        size: Pt(16.0),
                    },
                    Op::SetLineHeight { lh: Pt(24.0) },
                    Op::ShowText {
                        items: vec![TextItem::Text(title.into())],
                    },
                    Op::AddLineBreak,
                ]);
            }
            ops.extend([
                Op::SetFont {
                    font: PdfFontHandle::Builtin(BuiltinFont::Helvetica),
                    size: Pt(10.0),
                },
                Op::SetLineHeight { lh: Pt(14.0) },
            ]);
            for line in chunk {
                ops.push(Op::ShowText {
                    items: vec![TextItem::Text(line.clone())],
                });
                ops.push(Op::AddLineBreak);
            }
            ops.push(Op::EndTextSection);
            PdfPage::new(Mm(210.0), Mm(297.0), ops)
        })
        .collect();
    // Uncompressed: the receipt is small, and its text stays greppable.
    let options = PdfSaveOptions {
        optimize: false,
        ..PdfSaveOptions::default()
    };
    PdfDocument::new(title)
        .with_pages(pages)
        .save(&options, &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::protocol::RegisteredFile;
    use chrono::{TimeZone, Utc};

    fn registration() -> Registration {
        Registration {
            id: uuid::Uuid::now_v7(),
            request_id: uuid::Uuid::now_v7(),
            aoo: "0040".into(),
            year: 2025,
            number: 1632,
            signature: "INPS.0040.29/05/2025.0001632".into(),
            registered_at: Utc.with_ymd_and_hms(2025, 5, 29, 8, 30, 0).unwrap(),
            subject: "Documenti inviati in videochiamata".into(),
            files: vec![RegisteredFile {
                name: "carta.pdf".into(),
                sha256: "ab".repeat(32),
                size: 1234,
            }],
        }
    }

    #[test]
    fn the_receipt_lists_signature_time_and_files() {
        let lines = receipt_lines(&registration(), None);
        assert_eq!(lines[0], "Segnatura: INPS.0040.29/05/2025.0001632");
        assert_eq!(
            lines[1],
            "Registrato il 29/05/2025 alle 10:30:00, ora di Roma"
        );
        assert!(lines.iter().any(|l| l.contains(&"ab".repeat(32))));
        let pdf = receipt_pdf(&registration(), None);
        assert!(pdf.starts_with(b"%PDF-"));
    }
}
