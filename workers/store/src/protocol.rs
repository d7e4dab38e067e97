//! The protocol register in PostgreSQL: numbers, registrations, annulments,
//! daily registers. Every function works inside the caller's transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use sportello_domain::cron::TIME_ZONE;
use sportello_domain::protocol::{
    self, Annulment, Aoo, ChainBreak, DailyRegister, RegisterEntry, RegisteredFile,
};

#[derive(Debug, Clone)]
pub struct RegistrationRequest {
    /// The id the registration gets if it is new: chosen by the caller, so
    /// rows that point at it can be written before the number is taken.
    pub id: Uuid,
    /// What asked for the registration; registering it again is a no-op.
    pub request_id: Uuid,
    pub aoo: Aoo,
    pub subject: String,
    pub registered_by: serde_json::Value,
    pub files: Vec<RegisteredFile>,
    pub correlation_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub id: Uuid,
    pub request_id: Uuid,
    pub aoo: String,
    pub year: i32,
    pub number: i64,
    pub signature: String,
    pub registered_at: DateTime<Utc>,
    pub subject: String,
    pub files: Vec<RegisteredFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Midnight of 31 December passed while waiting for the counter: the
    /// transaction must be rolled back and retried in the new year.
    #[error("the year changed while registering; retry")]
    YearChanged,
    /// The database answered something that cannot be (a bug, not an outage:
    /// retrying will not help).
    #[error("inconsistent register: {0}")]
    Inconsistent(String),
}

/// Registers each request (or returns its existing registration), taking
/// consecutive numbers per AOO. Numbers are taken under the counter rows'
/// locks, held until the transaction ends, and the registration time is read
/// after them, so number order and time order agree. Callers take the numbers
/// as late in their transaction as they can: the locks serialise everyone
/// registering in the same AOO. Roll back on any error: the numbers return to
/// the counter.
pub async fn register(
    conn: &mut PgConnection,
    requests: &[RegistrationRequest],
) -> Result<Vec<Registration>, RegisterError> {
    let request_ids: Vec<Uuid> = requests.iter().map(|r| r.request_id).collect();
    let existing = find_by_requests(conn, &request_ids).await?;
    let mut by_request: HashMap<Uuid, Registration> =
        existing.into_iter().map(|r| (r.request_id, r)).collect();
    let mut new: Vec<&RegistrationRequest> = Vec::new();
    let mut seen = HashSet::new();
    for request in requests {
        if !by_request.contains_key(&request.request_id) && seen.insert(request.request_id) {
            new.push(request);
        }
    }
    // One lock order for everyone: no deadlock between AOOs.
    new.sort_by(|a, b| a.aoo.as_str().cmp(b.aoo.as_str()));

    let year = protocol::numbering_year(Utc::now());
    let mut registered = Vec::with_capacity(new.len());
    let groups: Vec<&[&RegistrationRequest]> = new.chunk_by(|a, b| a.aoo == b.aoo).collect();
    let counters = take_numbers(conn, year, &groups).await?;
    for (group, (last, registered_at)) in groups.iter().zip(counters) {
        if protocol::numbering_year(registered_at) != year {
            return Err(RegisterError::YearChanged);
        }
        let aoo = &group[0].aoo;
        let date = protocol::registration_date(registered_at);
        let first = last - group.len() as i64 + 1;
        for (offset, request) in group.iter().enumerate() {
            let number = first + offset as i64;
            registered.push((
                *request,
                Registration {
                    id: request.id,
                    request_id: request.request_id,
                    aoo: aoo.to_string(),
                    year,
                    number,
                    signature: protocol::signature(aoo, date, number),
                    registered_at,
                    subject: request.subject.clone(),
                    files: request.files.clone(),
                },
            ));
        }
    }
    insert(conn, &registered).await?;
    by_request.extend(registered.into_iter().map(|(_, r)| (r.request_id, r)));
    // In the callers' order.
    request_ids
        .iter()
        .map(|id| {
            by_request.get(id).cloned().ok_or_else(|| {
                RegisterError::Inconsistent(format!(
                    "request {id} was neither registered nor found"
                ))
            })
        })
        .collect()
}

/// Which of these requests are registered already.
pub async fn registered_requests(
    conn: &mut PgConnection,
    request_ids: &[Uuid],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    if request_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let found: Vec<Uuid> =
        sqlx::query_scalar("SELECT request_id FROM registrations WHERE request_id = ANY($1)")
            .bind(request_ids)
            .fetch_all(conn)
            .await?;
    Ok(found.into_iter().collect())
}

/// Advances the counter of each group's AOO by the group's size, in one
/// statement that locks the rows in AOO order (the groups come sorted).
/// Returns, per group, the last number taken and the time read after the lock.
async fn take_numbers(
    conn: &mut PgConnection,
    year: i32,
    groups: &[&[&RegistrationRequest]],
) -> Result<Vec<(i64, DateTime<Utc>)>, RegisterError> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let aoos: Vec<&str> = groups.iter().map(|g| g[0].aoo.as_str()).collect();
    let counts: Vec<i64> = groups.iter().map(|g| g.len() as i64).collect();
    let rows = sqlx::query(
        "INSERT INTO protocol_counters (aoo, year, last_number)
         SELECT aoo, $2, taken FROM UNNEST($1::text[], $3::bigint[]) AS t(aoo, taken) ORDER BY aoo
         ON CONFLICT (aoo, year)
             DO UPDATE SET last_number = protocol_counters.last_number + EXCLUDED.last_number
         RETURNING aoo, last_number, clock_timestamp() AS now",
    )
    .bind(&aoos)
    .bind(year)
    .bind(&counts)
    .fetch_all(&mut *conn)
    .await?;
    let mut taken: HashMap<String, (i64, DateTime<Utc>)> = HashMap::with_capacity(rows.len());
    for row in rows {
        taken.insert(
            row.try_get("aoo")?,
            (row.try_get("last_number")?, row.try_get("now")?),
        );
    }
    aoos.iter()
        .map(|aoo| {
            taken.get(*aoo).copied().ok_or_else(|| {
                RegisterError::Inconsistent(format!("no counter returned for AOO {aoo}"))
            })
        })
        .collect()
}

async fn insert(
    conn: &mut PgConnection,
    rows: &[(&RegistrationRequest, Registration)],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|(_, r)| r.id).collect();
    let aoos: Vec<&str> = rows.iter().map(|(_, r)| r.aoo.as_str()).collect();
    let years: Vec<i32> = rows.iter().map(|(_, r)| r.year).collect();
    let numbers: Vec<i64> = rows.iter().map(|(_, r)| r.number).collect();
    let signatures: Vec<&str> = rows.iter().map(|(_, r)| r.signature.as_str()).collect();
    let times: Vec<DateTime<Utc>> = rows.iter().map(|(_, r)| r.registered_at).collect();
    let by: Vec<&serde_json::Value> = rows.iter().map(|(q, _)| &q.registered_by).collect();
    let subjects: Vec<&str> = rows.iter().map(|(q, _)| q.subject.as_str()).collect();
    let files: Vec<serde_json::Value> = rows
        .iter()
        .map(|(q, _)| serde_json::to_value(&q.files).unwrap_or_default())
        .collect();
    let requests: Vec<Uuid> = rows.iter().map(|(q, _)| q.request_id).collect();
    let correlations: Vec<&str> = rows
        .iter()
        .map(|(q, _)| q.correlation_id.as_str())
        .collect();
    sqlx::query(
        "INSERT INTO registrations (id, aoo, year, number, signature, registered_at, registered_by,
                                    subject, files, request_id, correlation_id)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int[], $4::bigint[], $5::text[],
                              $6::timestamptz[], $7::jsonb[], $8::text[], $9::jsonb[], $10::uuid[],
                              $11::text[])",
    )
    .bind(&ids)
    .bind(&aoos)
    .bind(&years)
    .bind(&numbers)
    .bind(&signatures)
    .bind(&times)
    .bind(&by)
    .bind(&subjects)
    .bind(&files)
    .bind(&requests)
    .bind(&correlations)
    .execute(conn)
    .await?;
    Ok(())
}

fn registration_from_row(row: &sqlx::postgres::PgRow) -> Result<Registration, sqlx::Error> {
    let files: serde_json::Value = row.try_get("files")?;
    Ok(Registration {
        id: row.try_get("id")?,
        request_id: row.try_get("request_id")?,
        aoo: row.try_get("aoo")?,
        year: row.try_get("year")?,
        number: row.try_get("number")?,
        signature: row.try_get("signature")?,
        registered_at: row.try_get("registered_at")?,
        subject: row.try_get("subject")?,
        files: serde_json::from_value(files).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}

async fn find_by_requests(
    conn: &mut PgConnection,
    request_ids: &[Uuid],
) -> Result<Vec<Registration>, sqlx::Error> {
    sqlx::query("SELECT * FROM registrations WHERE request_id = ANY($1)")
        .bind(request_ids)
        .fetch_all(conn)
        .await?
        .iter()
        .map(registration_from_row)
        .collect()
}

#[derive(Debug, PartialEq, Eq)]
pub enum AnnulOutcome {
    Annulled,
    AlreadyAnnulled,
    NotFound,
}

/// Records the annulment of a registration. Who may annul is decided by the
/// caller (domain rules); the registration itself is never changed.
pub async fn annul(
    conn: &mut PgConnection,
    registration_id: Uuid,
    reason: &str,
    annulled_by: &serde_json::Value,
) -> Result<AnnulOutcome, sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM registrations WHERE id = $1)")
            .bind(registration_id)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        return Ok(AnnulOutcome::NotFound);
    }
    let inserted = sqlx::query(
        "INSERT INTO registration_annulments (registration_id, reason, annulled_by)
         VALUES ($1, $2, $3) ON CONFLICT (registration_id) DO NOTHING",
    )
    .bind(registration_id)
    .bind(reason)
    .bind(annulled_by)
    .execute(conn)
    .await?;
    Ok(if inserted.rows_affected() == 1 {
        AnnulOutcome::Annulled
    } else {
        AnnulOutcome::AlreadyAnnulled
    })
}

/// Start and end (exclusive) of a Rome calendar day, in UTC.
fn day_bounds(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start_of = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        TIME_ZONE
            .from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
    };
    (start_of(day), start_of(day + Duration::days(1)))
}

async fn entries_of(
    conn: &mut PgConnection,
    day: NaiveDate,
) -> Result<Vec<RegisterEntry>, sqlx::Error> {
    let (from, to) = day_bounds(day);
    let rows = sqlx::query(
        "SELECT r.*, a.reason, a.annulled_by, a.annulled_at
         FROM registrations r LEFT JOIN registration_annulments a ON a.registration_id = r.id
         WHERE r.registered_at >= $1 AND r.registered_at < $2
         ORDER BY r.aoo, r.year, r.number",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let registration = registration_from_row(row)?;
            let reason: Option<String> = row.try_get("reason")?;
            let annulment = match reason {
                Some(reason) => Some(Annulment {
                    reason,
                    annulled_by: row.try_get("annulled_by")?,
                    annulled_at: row.try_get("annulled_at")?,
                }),
                None => None,
            };
            Ok(RegisterEntry {
                signature: registration.signature,
                registered_at: registration.registered_at,
                subject: registration.subject,
                registered_by: row.try_get("registered_by")?,
                files: registration.files,
                annulment,
            })
        })
        .collect()
}

pub async fn daily_registers(conn: &mut PgConnection) -> Result<Vec<DailyRegister>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM daily_registers ORDER BY day")
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(DailyRegister {
                day: row.try_get("day")?,
                content: row.try_get("content")?,
                content_sha256: row.try_get("content_sha256")?,
                previous_sha256: row.try_get("previous_sha256")?,
                chain_sha256: row.try_get("chain_sha256")?,
            })
        })
        .collect()
}

/// The stored daily registers, in day order, and every break in their chain
/// (none when intact).
#[derive(Debug, Clone)]
pub struct ChainVerification {
    pub registers: Vec<DailyRegister>,
    pub breaks: Vec<ChainBreak>,
}

/// Reads every daily register (one statement, so one snapshot) and checks
/// the chain. Changes nothing.
pub async fn verify(conn: &mut PgConnection) -> Result<ChainVerification, sqlx::Error> {
    let registers = daily_registers(conn).await?;
    let breaks = protocol::verify_chain(&registers);
    Ok(ChainVerification { registers, breaks })
}

/// Produces every missing daily register up to and including `until`, in
/// day order, each chained to the one before. Returns the days produced.
pub async fn produce_daily_registers(
    conn: &mut PgConnection,
    until: NaiveDate,
) -> Result<Vec<NaiveDate>, sqlx::Error> {
    // Serialise producers; a second one finds the days done.
    sqlx::query("LOCK TABLE daily_registers IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
    let last: Option<(NaiveDate, String)> =
        sqlx::query_as("SELECT day, chain_sha256 FROM daily_registers ORDER BY day DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let first_registration: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT min(registered_at) FROM registrations")
            .fetch_one(&mut *conn)
            .await?;
    let mut day = match &last {
        Some((day, _)) => *day + Duration::days(1),
        None => first_registration
            .map(protocol::registration_date)
            .unwrap_or(until)
            .min(until),
    };
    let mut previous = last.map(|(_, hash)| hash);
    let mut produced = Vec::new();
    while day <= until {
        let entries = entries_of(conn, day).await?;
        let register = protocol::daily_register(day, &entries, previous.as_deref());
        sqlx::query(
            "INSERT INTO daily_registers (day, content, content_sha256, previous_sha256, chain_sha256)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(register.day)
        .bind(&register.content)
        .bind(&register.content_sha256)
        .bind(&register.previous_sha256)
        .bind(&register.chain_sha256)
        .execute(&mut *conn)
        .await?;
        previous = Some(register.chain_sha256);
        produced.push(day);
        day += Duration::days(1);
    }
    Ok(produced)
}

pub async fn registration(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Registration>, sqlx::Error> {
    sqlx::query("SELECT * FROM registrations WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(registration_from_row)
        .transpose()
}

/// The signature of each registration that numbered documents of the case,
/// by registration id (documents not yet registered name none).
pub async fn signatures_of_case(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<HashMap<Uuid, String>, sqlx::Error> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, signature FROM registrations
         WHERE id IN (SELECT registration_id FROM documents WHERE case_id = $1)",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Why the registration was annulled, if it was.
pub async fn annulment_reason(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT reason FROM registration_annulments WHERE registration_id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}
