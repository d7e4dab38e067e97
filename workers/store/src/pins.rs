//! PIN credentials, sealed halves, the postal queue, recoveries and
//! conversions. Hashes and seals only: no PIN is ever bound to a query here
//! in clear.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// A credential as a sign-in or recovery reads it (under its row lock).
#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub tax_code: String,
    pub state: String,
    pub ever_activated: bool,
    pub first_half_hash: Option<String>,
    pub initial_hash: Option<String>,
    pub pin_hash: Option<String>,
    pub failures: i32,
    pub locks_in_a_row: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub surname: String,
    pub name: String,
    pub birth_date: NaiveDate,
    pub sex: String,
    pub birthplace_code: String,
    pub birth_municipality: String,
    pub birth_province: String,
    pub residence: Value,
    pub home_phone: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub pec: Option<String>,
    /// When the current PIN was requested (a new request replaces it).
    pub requested_at: DateTime<Utc>,
    /// When the current initial PIN was issued (request, recovery or
    /// reissue): its halves are the half deliveries from then on.
    pub issued_at: DateTime<Utc>,
}

/// What a new request stores.
pub struct NewCredential<'a> {
    pub tax_code: &'a str,
    pub first_half_hash: &'a str,
    pub initial_hash: &'a str,
    pub surname: &'a str,
    pub name: &'a str,
    pub birth_date: NaiveDate,
    pub sex: &'a str,
    pub birthplace_code: &'a str,
    pub birth_municipality: &'a str,
    pub birth_province: &'a str,
    pub residence: Value,
    pub home_phone: Option<&'a str>,
    pub mobile: Option<&'a str>,
    pub email: Option<&'a str>,
    pub pec: Option<&'a str>,
    pub channel: &'a str,
    pub at: DateTime<Utc>,
}

/// Stores a new credential in `issued`, or replaces a revoked one; `false`
/// when the citizen already has a PIN (issued or active).
pub async fn insert_credential(
    conn: &mut PgConnection,
    new: &NewCredential<'_>,
) -> Result<bool, sqlx::Error> {
    let written = sqlx::query(
        "INSERT INTO pin_credentials (tax_code, state, ever_activated, first_half_hash,
                initial_hash, surname, name, birth_date, sex, birthplace_code, birth_municipality,
                birth_province, residence, home_phone, mobile, email, pec, channel, requested_at,
                updated_at, issued_at)
         VALUES ($1, 'issued', false, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                 $15, $16, $17, $17, $17)
         ON CONFLICT (tax_code) DO UPDATE
            SET state = 'issued', ever_activated = false, first_half_hash = EXCLUDED.first_half_hash,
                initial_hash = EXCLUDED.initial_hash, pin_hash = NULL, failures = 0,
                locks_in_a_row = 0, locked_until = NULL, surname = EXCLUDED.surname,
                name = EXCLUDED.name, birth_date = EXCLUDED.birth_date, sex = EXCLUDED.sex,
                birthplace_code = EXCLUDED.birthplace_code,
                birth_municipality = EXCLUDED.birth_municipality,
                birth_province = EXCLUDED.birth_province, residence = EXCLUDED.residence,
                home_phone = EXCLUDED.home_phone, mobile = EXCLUDED.mobile,
                email = EXCLUDED.email, pec = EXCLUDED.pec, channel = EXCLUDED.channel,
                requested_at = EXCLUDED.requested_at, updated_at = EXCLUDED.updated_at,
                issued_at = EXCLUDED.issued_at
          WHERE pin_credentials.state = 'revoked'",
    )
    .bind(new.tax_code)
    .bind(new.first_half_hash)
    .bind(new.initial_hash)
    .bind(new.surname)
    .bind(new.name)
    .bind(new.birth_date)
    .bind(new.sex)
    .bind(new.birthplace_code)
    .bind(new.birth_municipality)
    .bind(new.birth_province)
    .bind(&new.residence)
    .bind(new.home_phone)
    .bind(new.mobile)
    .bind(new.email)
    .bind(new.pec)
    .bind(new.channel)
    .bind(new.at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(written == 1)
}

/// The credential of `tax_code`, locked until the transaction ends: the
/// attempts on one PIN are counted one after the other, in any process.
pub async fn lock_credential(
    conn: &mut PgConnection,
    tax_code: &str,
) -> Result<Option<CredentialRow>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM pin_credentials WHERE tax_code = $1 FOR UPDATE")
        .bind(tax_code)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(credential_from_row).transpose()
}

/// The credential of `tax_code`, read without its lock (to look, not to
/// change it).
pub async fn credential(
    conn: &mut PgConnection,
    tax_code: &str,
) -> Result<Option<CredentialRow>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM pin_credentials WHERE tax_code = $1")
        .bind(tax_code)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(credential_from_row).transpose()
}

fn credential_from_row(row: &sqlx::postgres::PgRow) -> Result<CredentialRow, sqlx::Error> {
    {
        Ok(CredentialRow {
            tax_code: row.try_get("tax_code")?,
            state: row.try_get("state")?,
            ever_activated: row.try_get("ever_activated")?,
            first_half_hash: row.try_get("first_half_hash")?,
            initial_hash: row.try_get("initial_hash")?,
            pin_hash: row.try_get("pin_hash")?,
            failures: row.try_get("failures")?,
            locks_in_a_row: row.try_get("locks_in_a_row")?,
            locked_until: row.try_get("locked_until")?,
            surname: row.try_get("surname")?,
            name: row.try_get("name")?,
            birth_date: row.try_get("birth_date")?,
            sex: row.try_get("sex")?,
            birthplace_code: row.try_get("birthplace_code")?,
            birth_municipality: row.try_get("birth_municipality")?,
            birth_province: row.try_get("birth_province")?,
            residence: row.try_get("residence")?,
            home_phone: row.try_get("home_phone")?,
            mobile: row.try_get("mobile")?,
            email: row.try_get("email")?,
            pec: row.try_get("pec")?,
            requested_at: row.try_get("requested_at")?,
            issued_at: row.try_get("issued_at")?,
        })
    }
}

/// One more wrong attempt, and the lock it reached (if any).
pub async fn record_failure(
    conn: &mut PgConnection,
    tax_code: &str,
    failures: i32,
    locked_until: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE pin_credentials
            SET failures = CASE WHEN $3::timestamptz IS NULL THEN $2 ELSE 0 END,
                locks_in_a_row = locks_in_a_row + CASE WHEN $3::timestamptz IS NULL THEN 0 ELSE 1 END,
                locked_until = COALESCE($3, locked_until), updated_at = now()
          WHERE tax_code = $1",
    )
    .bind(tax_code)
    .bind(failures)
    .bind(locked_until)
    .execute(conn)
    .await?;
    Ok(())
}

/// A right PIN: the counters start again.
pub async fn record_success(conn: &mut PgConnection, tax_code: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE pin_credentials
            SET failures = 0, locks_in_a_row = 0, locked_until = NULL, updated_at = now()
          WHERE tax_code = $1",
    )
    .bind(tax_code)
    .execute(conn)
    .await?;
    Ok(())
}

/// First use done: the chosen PIN's hash replaces the initial PIN's.
pub async fn activate(
    conn: &mut PgConnection,
    tax_code: &str,
    pin_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE pin_credentials
            SET state = 'active', pin_hash = $2, first_half_hash = NULL, initial_hash = NULL,
                ever_activated = true, failures = 0, locks_in_a_row = 0, locked_until = NULL,
                updated_at = now()
          WHERE tax_code = $1",
    )
    .bind(tax_code)
    .bind(pin_hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// Recovery: a new initial PIN replaces the lost one, and unlocks.
pub async fn reissue(
    conn: &mut PgConnection,
    tax_code: &str,
    initial_hash: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE pin_credentials
            SET state = 'issued', pin_hash = NULL, first_half_hash = NULL, initial_hash = $2,
                failures = 0, locks_in_a_row = 0, locked_until = NULL, updated_at = now(),
                issued_at = $3
          WHERE tax_code = $1",
    )
    .bind(tax_code)
    .bind(initial_hash)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A new PIN in place of an issued one whose half never arrived: new
/// hashes (the first half's only for a PIN never activated, the simplified
/// access being for those alone), counters and lock cleared, and what the
/// old PIN still had waiting is dropped: the seals of its half deliveries
/// and its letter if not yet taken (as a revocation does).
pub async fn supersede(
    conn: &mut PgConnection,
    tax_code: &str,
    first_half_hash: &str,
    initial_hash: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE pin_credentials
            SET state = 'issued', pin_hash = NULL,
                first_half_hash = CASE WHEN ever_activated THEN NULL ELSE $2 END,
                initial_hash = $3, failures = 0, locks_in_a_row = 0, locked_until = NULL,
                updated_at = $4, issued_at = $4
          WHERE tax_code = $1",
    )
    .bind(tax_code)
    .bind(first_half_hash)
    .bind(initial_hash)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM pin_sealed_halves h USING deliveries d, notifications n
          WHERE h.delivery_id = d.id AND d.notification_id = n.id AND n.tax_code = $1
            AND n.rule = ANY($2)",
    )
    .bind(tax_code)
    .bind(&crate::pin_halves::HALF_RULES[..])
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE pin_postal_letters SET taken_at = now(), nonce = NULL, sealed = NULL
          WHERE tax_code = $1 AND taken_at IS NULL",
    )
    .bind(tax_code)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether an approved conversion (its case closed *accolta*) made the
/// citizen's PIN *dispositivo*.
pub async fn is_dispositivo(conn: &mut PgConnection, tax_code: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pin_conversions c
                          JOIN tickets t ON t.request_message_id = c.message_id
                         WHERE c.tax_code = $1 AND t.state = 'chiusa' AND t.outcome = 'accolta')",
    )
    .bind(tax_code)
    .fetch_one(conn)
    .await
}

/// Whether a conversion of the citizen's waits: its case not opened yet,
/// or open.
pub async fn pending_conversion(
    conn: &mut PgConnection,
    tax_code: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pin_conversions c
                          LEFT JOIN tickets t ON t.request_message_id = c.message_id
                         WHERE c.tax_code = $1 AND (t.id IS NULL OR t.state <> 'chiusa'))",
    )
    .bind(tax_code)
    .fetch_one(conn)
    .await
}

pub async fn insert_conversion(
    conn: &mut PgConnection,
    message_id: Uuid,
    tax_code: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pin_conversions (message_id, tax_code, requested_at) VALUES ($1, $2, $3)",
    )
    .bind(message_id)
    .bind(tax_code)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A half held for its delivery, until the delivery is sent or failed.
pub async fn insert_sealed_half(
    conn: &mut PgConnection,
    delivery_id: Uuid,
    nonce: &[u8],
    sealed: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO pin_sealed_halves (delivery_id, nonce, sealed) VALUES ($1, $2, $3)")
        .bind(delivery_id)
        .bind(nonce)
        .bind(sealed)
        .execute(conn)
        .await?;
    Ok(())
}

/// The sealed halves of these deliveries: (delivery, nonce, sealed).
pub async fn sealed_halves(
    conn: &mut PgConnection,
    delivery_ids: &[Uuid],
) -> Result<Vec<(Uuid, Vec<u8>, Vec<u8>)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT delivery_id, nonce, sealed FROM pin_sealed_halves WHERE delivery_id = ANY($1)",
    )
    .bind(delivery_ids)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("delivery_id")?,
                r.try_get("nonce")?,
                r.try_get("sealed")?,
            ))
        })
        .collect()
}

/// Deletes the halves of deliveries that are over (sent or failed).
pub async fn scrub_finished_halves(
    conn: &mut PgConnection,
    delivery_ids: &[Uuid],
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM pin_sealed_halves h USING deliveries d
          WHERE h.delivery_id = d.id AND d.id = ANY($1) AND d.state IN ('sent', 'failed')",
    )
    .bind(delivery_ids)
    .execute(conn)
    .await?
    .rows_affected())
}

/// A letter for the print-and-mail queue.
#[allow(clippy::too_many_arguments)]
pub async fn queue_letter(
    conn: &mut PgConnection,
    id: Uuid,
    tax_code: &str,
    recipient: &str,
    address: &Value,
    nonce: &[u8],
    sealed: &[u8],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pin_postal_letters (id, tax_code, recipient, address, nonce, sealed, queued_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(tax_code)
    .bind(recipient)
    .bind(address)
    .bind(nonce)
    .bind(sealed)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A letter the postal service takes.
#[derive(Debug, Clone)]
pub struct TakenLetter {
    pub id: Uuid,
    pub tax_code: String,
    pub recipient: String,
    pub address: Value,
    pub nonce: Vec<u8>,
    pub sealed: Vec<u8>,
    pub queued_at: DateTime<Utc>,
}

/// Takes up to `limit` queued letters, oldest first: marked taken and their
/// seals deleted in the caller's transaction (which commits only once the
/// letters were handed over), the seals returned for printing.
pub async fn take_letters(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<TakenLetter>, sqlx::Error> {
    let rows = sqlx::query(
        "WITH picked AS (
            SELECT id, nonce, sealed FROM pin_postal_letters
             WHERE taken_at IS NULL ORDER BY queued_at LIMIT $1 FOR UPDATE SKIP LOCKED
         )
         UPDATE pin_postal_letters l
            SET taken_at = now(), nonce = NULL, sealed = NULL
           FROM picked p
          WHERE l.id = p.id
      RETURNING l.id, l.tax_code, l.recipient, l.address, p.nonce, p.sealed, l.queued_at",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    let mut letters: Vec<TakenLetter> = rows
        .iter()
        .map(|r| {
            Ok(TakenLetter {
                id: r.try_get("id")?,
                tax_code: r.try_get("tax_code")?,
                recipient: r.try_get("recipient")?,
                address: r.try_get("address")?,
                nonce: r.try_get("nonce")?,
                sealed: r.try_get("sealed")?,
                queued_at: r.try_get("queued_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    letters.sort_by_key(|l| l.queued_at);
    Ok(letters)
}

/// A recovery waiting for its link to be followed.
#[derive(Debug, Clone)]
pub struct RecoveryRow {
    pub id: Uuid,
    pub tax_code: String,
    pub secret_hash: Vec<u8>,
    pub first_to: String,
    pub second_to: String,
    pub expires_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_recovery(
    conn: &mut PgConnection,
    id: Uuid,
    tax_code: &str,
    secret_hash: &[u8],
    first_to: &str,
    second_to: &str,
    at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pin_recoveries (id, tax_code, secret_hash, first_to, second_to, requested_at,
                expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(tax_code)
    .bind(secret_hash)
    .bind(first_to)
    .bind(second_to)
    .bind(at)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// How long a recovery is kept once its link expired: it holds the two
/// contacts the halves went to, wanted only while someone may ask about
/// the attempt.
const KEEP_EXPIRED_RECOVERIES_DAYS: i32 = 30;

/// Forgets recoveries whose link expired more than
/// `KEEP_EXPIRED_RECOVERIES_DAYS` ago (cron job `retention`); returns how many.
pub async fn purge_expired_recoveries(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let purged = sqlx::query(
        "DELETE FROM pin_recoveries WHERE expires_at < now() - make_interval(days => $1)",
    )
    .bind(KEEP_EXPIRED_RECOVERIES_DAYS)
    .execute(conn)
    .await?;
    Ok(purged.rows_affected())
}

pub async fn lock_recovery(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<RecoveryRow>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM pin_recoveries WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok(RecoveryRow {
            id: r.try_get("id")?,
            tax_code: r.try_get("tax_code")?,
            secret_hash: r.try_get("secret_hash")?,
            first_to: r.try_get("first_to")?,
            second_to: r.try_get("second_to")?,
            expires_at: r.try_get("expires_at")?,
            confirmed_at: r.try_get("confirmed_at")?,
        })
    })
    .transpose()
}

pub async fn confirm_recovery(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE pin_recoveries SET confirmed_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes a credential: its hashes go, and any half still waiting (a
/// delivery not yet sent, a letter not yet taken) is deleted with it.
pub async fn revoke(conn: &mut PgConnection, tax_code: &str) -> Result<bool, sqlx::Error> {
    let revoked = sqlx::query(
        "UPDATE pin_credentials
            SET state = 'revoked', first_half_hash = NULL, initial_hash = NULL, pin_hash = NULL,
                failures = 0, locks_in_a_row = 0, locked_until = NULL, updated_at = now()
          WHERE tax_code = $1 AND state <> 'revoked'",
    )
    .bind(tax_code)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    sqlx::query(
        "DELETE FROM pin_sealed_halves h USING deliveries d, notifications n
          WHERE h.delivery_id = d.id AND d.notification_id = n.id AND n.tax_code = $1",
    )
    .bind(tax_code)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE pin_postal_letters SET taken_at = now(), nonce = NULL, sealed = NULL
          WHERE tax_code = $1 AND taken_at IS NULL",
    )
    .bind(tax_code)
    .execute(&mut *conn)
    .await?;
    Ok(revoked)
}
