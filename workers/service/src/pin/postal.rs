//! The second half by post (*posta ordinaria*): a print-and-mail queue.
//! A letter waits with its half sealed (bound to the letter's id); the
//! postal service takes a batch (`sportello pin-letters --dir DIR`, or
//! [`take`]): each letter is rendered as a PDF, handed over, and its seal
//! deleted in the same transaction, committed only after the hand-over
//! succeeded. After that Sportello cannot print the half again.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::crypto::PinKeys;
use super::PinError;
use crate::documents::receipt::lines_pdf;
use crate::domain::pin::{PinHalf, Residence};
use crate::store::pins as store;

/// Queues the letter carrying `second` to the citizen's residence.
pub async fn queue(
    conn: &mut PgConnection,
    keys: &PinKeys,
    tax_code: &str,
    recipient: &str,
    residence: &Residence,
    second: &PinHalf,
    now: DateTime<Utc>,
) -> Result<Uuid, PinError> {
    let id = Uuid::now_v7();
    let (nonce, sealed) = keys.seal(second.expose(), id.as_bytes());
    let address = serde_json::to_value(residence)?;
    store::queue_letter(
        conn, id, tax_code, recipient, &address, &nonce, &sealed, now,
    )
    .await?;
    Ok(id)
}

/// A letter as the postal service receives it.
#[derive(Serialize)]
pub struct Letter {
    pub id: Uuid,
    pub recipient: String,
    /// The postal address, line by line.
    pub address: Vec<String>,
    pub queued_at: DateTime<Utc>,
    /// The letter to print, A4.
    #[serde(skip)]
    pub pdf: Vec<u8>,
}

impl std::fmt::Debug for Letter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Letter")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The letter's text (the half is in it: only the PDF carries it).
fn letter_lines(recipient: &str, address: &[String], half: &str) -> Vec<String> {
    let mut lines = vec![recipient.to_owned()];
    lines.extend(address.iter().cloned());
    lines.extend([
        String::new(),
        "Oggetto: il tuo PIN INPS - seconda parte".into(),
        String::new(),
        "Gentile cittadina, gentile cittadino,".into(),
        "questi sono i secondi 8 caratteri del tuo PIN iniziale.".into(),
        String::new(),
        format!("Seconda parte del PIN: {half}"),
        String::new(),
        "Al primo accesso inserisci i 16 caratteri: prima i primi 8, ricevuti via SMS, email"
            .into(),
        "o PEC, poi questi 8. Ti sarà chiesto di sostituirli con un PIN di 8 caratteri,".into(),
        "da conservare per gli accessi successivi.".into(),
        String::new(),
        "Non comunicare il PIN a nessuno: l'INPS non lo chiede mai per telefono o email.".into(),
    ]);
    lines
}

/// Takes up to `limit` letters and hands them to `deliver` (the postal
/// service's intake); the seals are deleted only when `deliver` succeeded.
pub async fn take<F, Fut, E>(
    pool: &PgPool,
    keys: &PinKeys,
    limit: i64,
    deliver: F,
) -> Result<Result<usize, E>, PinError>
where
    F: FnOnce(Vec<Letter>) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let mut tx = pool.begin().await?;
    let taken = store::take_letters(&mut tx, limit).await?;
    let mut letters = Vec::with_capacity(taken.len());
    for row in taken {
        let half = keys
            .open(&row.nonce, &row.sealed, row.id.as_bytes())
            .map_err(|e| PinError::Refused(format!("letter {}: {e}", row.id)))?;
        let residence: Residence = serde_json::from_value(row.address)?;
        let address = residence.lines();
        let pdf = lines_pdf(
            "INPS - Il tuo PIN",
            &letter_lines(&row.recipient, &address, half.expose()),
        );
        letters.push(Letter {
            id: row.id,
            recipient: row.recipient,
            address,
            queued_at: row.queued_at,
            pdf,
        });
    }
    let count = letters.len();
    match deliver(letters).await {
        Ok(()) => {
            tx.commit().await?;
            tracing::info!(count, "PIN letters taken by the postal service");
            Ok(Ok(count))
        }
        Err(error) => {
            tx.rollback().await?;
            Ok(Err(error))
        }
    }
}

/// `sportello pin-letters --dir DIR`: writes each letter as
/// `<id>.pdf` and `<id>.json` (recipient and address) into `dir`, the
/// folder the postal service collects.
pub async fn take_into_dir(
    pool: &PgPool,
    keys: &PinKeys,
    limit: i64,
    dir: &std::path::Path,
) -> Result<usize, anyhow::Error> {
    let dir = dir.to_owned();
    let outcome = take(pool, keys, limit, |letters| async move {
        std::fs::create_dir_all(&dir)?;
        for letter in &letters {
            std::fs::write(dir.join(format!("{}.pdf", letter.id)), &letter.pdf)?;
            std::fs::write(
                dir.join(format!("{}.json", letter.id)),
                serde_json::to_vec_pretty(letter).map_err(std::io::Error::other)?,
            )?;
        }
        Ok::<(), std::io::Error>(())
    })
    .await?;
    Ok(outcome?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_letter_carries_the_half_and_the_address() {
        let lines = letter_lines(
            "Mario Rossi",
            &["Via Roma 1".into(), "70121 Bari (BA)".into()],
            "ABCD2345",
        );
        assert_eq!(lines[0], "Mario Rossi");
        assert!(lines.iter().any(|l| l.contains("ABCD2345")));
        let pdf = lines_pdf("INPS - Il tuo PIN", &lines);
        assert!(pdf.starts_with(b"%PDF-"));
    }
}
