//! The citizen's notification centre (*Centro notifiche*) and the operators'
//! delivery log. Each operation checks who asks: the centre and the contact
//! preferences are the citizen's own; the delivery log of a ticket is for the
//! operators of the ticket's office.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::contract::Principal;
use crate::domain::document::Side;
use crate::domain::notification::{
    days_left, days_left_label, link_visible, normalize_address, KnownContacts, Medium, Tab,
};
use crate::store::notifications::{self as store, LoggedNotification, NotificationRow};
use crate::tickets::{self, TicketError};

#[derive(Debug, thiserror::Error)]
pub enum CentreError {
    #[error("notification not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<TicketError> for CentreError {
    fn from(error: TicketError) -> Self {
        match error {
            TicketError::NotFound => CentreError::NotFound,
            TicketError::Forbidden(why) => CentreError::Forbidden(why),
            TicketError::Database(e) => CentreError::Database(e),
            other => CentreError::Invalid(other.to_string()),
        }
    }
}

pub const PAGE_SIZE: i64 = 20;
const MAX_PAGE: u32 = 10_000;

/// The citizen the centre belongs to: only citizens have one.
fn own_tax_code(principal: &Principal) -> Result<&str, CentreError> {
    match principal {
        Principal::Citizen { tax_code, .. } => Ok(tax_code.as_str()),
        _ => Err(CentreError::Forbidden(
            "the notification centre and its preferences belong to the citizen alone".into(),
        )),
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CentreQuery {
    /// `messages` (default), `deadlines` or `appointments`.
    pub tab: Option<String>,
    /// Only unread notifications.
    #[serde(default)]
    pub unread: bool,
    /// From 1.
    pub page: Option<u32>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TabSummary {
    pub tab: Tab,
    pub label: &'static str,
    pub unread: i64,
}

/// A notification as the centre shows it now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CentreItem {
    pub id: Uuid,
    pub title: String,
    pub body: String,
    pub subject_kind: Option<String>,
    pub subject_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub read: bool,
    pub due_at: Option<DateTime<Utc>>,
    /// Calendar days (Europe/Rome) to `due_at`, and as the centre says it.
    pub days_left: Option<i64>,
    pub days_left_label: Option<String>,
    /// Present only when it may be used now (a video call: on its day).
    pub link: Option<String>,
}

impl CentreItem {
    fn at(row: NotificationRow, now: DateTime<Utc>) -> Self {
        let days = row.due_at.map(|due| days_left(due, now));
        let link = row
            .link
            .filter(|_| link_visible(row.link_on_due_day, row.due_at, now));
        CentreItem {
            id: row.id,
            title: row.title,
            body: row.body,
            subject_kind: row.subject_kind,
            subject_id: row.subject_id,
            created_at: row.created_at,
            read: row.read_at.is_some(),
            due_at: row.due_at,
            days_left: days,
            days_left_label: days.map(days_left_label),
            link,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CentreView {
    pub tab: Tab,
    pub tabs: Vec<TabSummary>,
    pub items: Vec<CentreItem>,
    pub page: u32,
    pub next_page: Option<u32>,
}

pub async fn view(
    pool: &PgPool,
    principal: &Principal,
    query: &CentreQuery,
    now: DateTime<Utc>,
) -> Result<CentreView, CentreError> {
    let tax_code = own_tax_code(principal)?;
    let tab = match query.tab.as_deref() {
        None => Tab::Messages,
        Some(raw) => Tab::parse(raw).ok_or_else(|| {
            CentreError::Invalid(format!(
                "unknown tab {raw:?}: use messages, deadlines or appointments"
            ))
        })?,
    };
    let page = query.page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(CentreError::Invalid(format!("page is 1 to {MAX_PAGE}")));
    }
    let mut conn = pool.acquire().await?;
    let offset = i64::from(page - 1) * PAGE_SIZE;
    let mut rows = store::list(&mut conn, tax_code, tab, query.unread, offset, PAGE_SIZE).await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    let counts = store::unread_counts(&mut conn, tax_code).await?;
    let tabs = Tab::ALL
        .into_iter()
        .map(|tab| TabSummary {
            tab,
            label: tab.label(),
            unread: counts
                .iter()
                .find(|(name, _)| name == tab.as_str())
                .map_or(0, |(_, n)| *n),
        })
        .collect();
    Ok(CentreView {
        tab,
        tabs,
        items: rows
            .into_iter()
            .map(|row| CentreItem::at(row, now))
            .collect(),
        page,
        next_page: more.then_some(page + 1),
    })
}

/// Marks one of the citizen's notifications read or unread.
pub async fn mark(
    pool: &PgPool,
    principal: &Principal,
    id: Uuid,
    read: bool,
    now: DateTime<Utc>,
) -> Result<CentreItem, CentreError> {
    let tax_code = own_tax_code(principal)?;
    let mut tx = pool.begin().await?;
    let owner = store::owner(&mut tx, id)
        .await?
        .ok_or(CentreError::NotFound)?;
    // Someone else's notification answers as a missing one: its id tells nothing.
    if owner != tax_code {
        return Err(CentreError::NotFound);
    }
    let row = store::set_read(&mut tx, id, read)
        .await?
        .ok_or(CentreError::NotFound)?;
    tx.commit().await?;
    Ok(CentreItem::at(row, now))
}

pub async fn contacts(pool: &PgPool, principal: &Principal) -> Result<KnownContacts, CentreError> {
    let tax_code = own_tax_code(principal)?;
    let mut conn = pool.acquire().await?;
    Ok(store::known_contacts(&mut conn, tax_code).await?)
}

/// Replaces the citizen's contacts and preferences; addresses are checked
/// and stored normalised (phone numbers as E.164).
pub async fn save_contacts(
    pool: &PgPool,
    principal: &Principal,
    contacts: KnownContacts,
) -> Result<KnownContacts, CentreError> {
    let tax_code = own_tax_code(principal)?;
    let normalise = |medium, address: Option<String>| {
        address
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .map(|a| normalize_address(medium, &a))
            .transpose()
            .map_err(CentreError::Invalid)
    };
    let contacts = KnownContacts {
        email: normalise(Medium::Email, contacts.email)?,
        phone: normalise(Medium::Sms, contacts.phone)?,
        ..contacts
    };
    let mut conn = pool.acquire().await?;
    store::save_contacts(&mut conn, tax_code, &contacts).await?;
    Ok(contacts)
}

/// Every notification about a ticket with its deliveries and attempts, for
/// the operators of the ticket's office.
pub async fn ticket_log(
    pool: &PgPool,
    principal: &Principal,
    ticket_id: Uuid,
) -> Result<Vec<LoggedNotification>, CentreError> {
    let mut conn = pool.acquire().await?;
    let side = tickets::side_on_ticket(&mut conn, principal, ticket_id).await?;
    if side != Side::Office {
        return Err(CentreError::Forbidden(
            "the delivery log is for the operators of the ticket's office".into(),
        ));
    }
    Ok(store::log_for_subject(&mut conn, ticket_id).await?)
}

/// Every notification about an appointment with its deliveries and attempts,
/// for the operators of the appointment's office (as its latest
/// notification names it).
pub async fn appointment_log(
    pool: &PgPool,
    principal: &Principal,
    appointment_id: Uuid,
) -> Result<Vec<LoggedNotification>, CentreError> {
    let Principal::Operator { office, .. } = principal else {
        return Err(CentreError::Forbidden(
            "the delivery log is for the operators of the appointment's office".into(),
        ));
    };
    let mut conn = pool.acquire().await?;
    let owner = store::subject_office(&mut conn, "appointment", appointment_id)
        .await?
        .ok_or(CentreError::NotFound)?;
    if &owner != office {
        return Err(CentreError::Forbidden(
            "the delivery log is for the operators of the appointment's office".into(),
        ));
    }
    Ok(store::log_for_subject(&mut conn, appointment_id).await?)
}
