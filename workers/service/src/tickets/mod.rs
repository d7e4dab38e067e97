//! Back-office tickets as their users reach them: search, detail, and the
//! operators' actions. Each operation checks who is asking (citizen,
//! intermediary with an active delegation, operator of the ticket's office),
//! decides with `domain::ticket`, and writes the change, its history entry and
//! its event in one transaction. The JSON API and the staff pages both call
//! this module.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::contract::{
    CodiceFiscale, Envelope, Event, MessageAdded, Principal, TicketMessageAdded,
};
use crate::domain::access::{agent_read, side_on_case, AgentRead};
use crate::domain::cron::TIME_ZONE;
use crate::domain::document::Side;
use crate::domain::ticket::{
    changed_event, decide, refuse_citizen_message, HoldingOffice, LifecycleError, Operator,
    TicketAction, TicketFacts, TicketState,
};
use crate::store::documents::{self as documents_store, Document};
use crate::store::outbox::{self, OutboxMessage};
use crate::store::tickets::{
    self as store, AppliedChange, HistoryEntry, Office, Scope, TicketFilter, TicketRecord,
    TicketSummary,
};

pub use store::TicketFilter as Filter;

pub mod agent_reads;
use agent_reads::Read;

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("ticket not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("{0}")]
    Lifecycle(LifecycleError),
    #[error("no office with AOO `{0}`")]
    UnknownOffice(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event encoding: {0}")]
    Encoding(#[from] serde_json::Error),
}

impl From<LifecycleError> for TicketError {
    fn from(error: LifecycleError) -> Self {
        match error {
            LifecycleError::NotYourOffice { .. } => TicketError::Forbidden(error.to_string()),
            other => TicketError::Lifecycle(other),
        }
    }
}

/// A search parameter that cannot be used. The message is for integrators
/// (parameter names as in the query string); the staff pages say it in
/// Italian from the same variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("state must be aperta, in_carico or chiusa, not `{0}`")]
    State(String),
    #[error("{field} is at most {MAX_SEARCH_TEXT} characters")]
    TooLong { field: &'static str },
    #[error("{field} must be a date (YYYY-MM-DD) or an RFC 3339 time, not `{raw}`")]
    Date { field: &'static str, raw: String },
    #[error("{field} is out of range")]
    OutOfRange { field: &'static str },
    #[error("{field} does not exist in Europe/Rome")]
    NoSuchLocalTime { field: &'static str },
    #[error("page must be between 1 and {MAX_PAGE}")]
    Page,
    #[error("per_page must be between 1 and {MAX_PAGE_SIZE}")]
    PerPage,
}

pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Longest `q` or `matricola`: a subject's words, not a document.
pub const MAX_SEARCH_TEXT: usize = 200;
pub const MAX_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE: u32 = 10_000;

/// Search parameters as they arrive in a query string (API or staff form).
/// Dates are `YYYY-MM-DD` (whole days, Europe/Rome, both ends included) or
/// RFC 3339 instants.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The contribution position.
    pub matricola: Option<String>,
    /// Words of the subject (Italian stemming).
    pub q: Option<String>,
    /// `aperta`, `in_carico` or `chiusa`.
    pub state: Option<String>,
    /// Opened on or after: `YYYY-MM-DD` (Europe/Rome) or RFC 3339.
    pub opened_from: Option<String>,
    /// Opened on or before.
    pub opened_to: Option<String>,
    /// Last updated on or after.
    pub updated_from: Option<String>,
    /// Last updated on or before.
    pub updated_to: Option<String>,
    /// From 1.
    pub page: Option<u32>,
    /// At most 100; 20 by default.
    pub per_page: Option<u32>,
}

impl SearchQuery {
    /// Validates the parameters; empty strings (an untouched form field) are absent.
    pub fn filter(&self) -> Result<(TicketFilter, u32, u32), FilterError> {
        let present = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let state = match present(&self.state) {
            None => None,
            Some(raw) => Some(TicketState::parse(&raw).ok_or(FilterError::State(raw))?),
        };
        for (name, value) in [("matricola", &self.matricola), ("q", &self.q)] {
            if value
                .as_ref()
                .is_some_and(|v| v.chars().count() > MAX_SEARCH_TEXT)
            {
                return Err(FilterError::TooLong { field: name });
            }
        }
        let filter = TicketFilter {
            matricola: present(&self.matricola).map(|m| m.to_uppercase()),
            text: present(&self.q),
            state,
            opened_from: instant(present(&self.opened_from), "opened_from", Bound::Start)?,
            opened_to: instant(present(&self.opened_to), "opened_to", Bound::End)?,
            updated_from: instant(present(&self.updated_from), "updated_from", Bound::Start)?,
            updated_to: instant(present(&self.updated_to), "updated_to", Bound::End)?,
        };
        let page = self.page.unwrap_or(1);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(FilterError::Page);
        }
        let per_page = self.per_page.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&per_page) {
            return Err(FilterError::PerPage);
        }
        Ok((filter, page, per_page))
    }
}

#[derive(Clone, Copy)]
enum Bound {
    Start,
    /// Exclusive: a date means up to the end of that day.
    End,
}

fn instant(
    raw: Option<String>,
    field: &'static str,
    bound: Bound,
) -> Result<Option<DateTime<Utc>>, FilterError> {
    let Some(raw) = raw else { return Ok(None) };
    let invalid = || FilterError::Date {
        field,
        raw: raw.clone(),
    };
    // Years PostgreSQL and people mean; chrono also reads `-5000` or `+99999`.
    let plausible = |year: i32| (1900..=9999).contains(&year);
    if let Ok(at) = DateTime::parse_from_rfc3339(&raw) {
        let at = at.with_timezone(&Utc);
        return if plausible(at.year()) {
            Ok(Some(at))
        } else {
            Err(invalid())
        };
    }
    let date = NaiveDate::parse_from_str(&raw, "%Y-%m-%d")
        .ok()
        .filter(|d| plausible(d.year()))
        .ok_or_else(invalid)?;
    let day = match bound {
        Bound::Start => date,
        Bound::End => date.succ_opt().ok_or(FilterError::OutOfRange { field })?,
    };
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    let local = TIME_ZONE
        .from_local_datetime(&midnight)
        .earliest()
        .ok_or(FilterError::NoSuchLocalTime { field })?;
    Ok(Some(local.with_timezone(&Utc)))
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub tickets: Vec<TicketSummary>,
    pub page: u32,
    pub per_page: u32,
    pub has_more: bool,
}

/// Whose tickets the principal may search.
fn scope_of(principal: &Principal) -> Result<Scope, TicketError> {
    match principal {
        Principal::Citizen { tax_code, .. } => Ok(Scope::Citizen(tax_code.to_string())),
        Principal::Intermediary { tax_code, .. } => Ok(Scope::Intermediary(tax_code.to_string())),
        Principal::Operator { office, .. } => Ok(Scope::Office(office.clone())),
        Principal::ContactCenterAgent { .. } => Err(TicketError::Forbidden(
            "contact-centre agents do not consult the ticket history".into(),
        )),
    }
}

/// A contact-centre agent's read of its caller's tickets, or `None` for
/// anyone else; refused without (or with too weak) an identification.
fn agent_reading(principal: &Principal) -> Result<Option<AgentRead>, TicketError> {
    agent_read(principal)
        .transpose()
        .map_err(|refusal| TicketError::Forbidden(refusal.to_string()))
}

/// The history search. `correlation_id` goes to the audit trail when an
/// agent searches.
pub async fn search(
    pool: &PgPool,
    principal: &Principal,
    query: &SearchQuery,
    correlation_id: &str,
) -> Result<Page, TicketError> {
    let agent = agent_reading(principal)?;
    let scope = match &agent {
        Some(read) => Scope::Citizen(read.citizen.to_string()),
        None => scope_of(principal)?,
    };
    let (filter, page, per_page) = query.filter()?;
    let mut conn = pool.acquire().await?;
    let offset = i64::from(page - 1) * i64::from(per_page);
    let (mut tickets, has_more) =
        store::search(&mut conn, &scope, &filter, offset, i64::from(per_page)).await?;
    if let Some(read) = &agent {
        let shown: Vec<(Uuid, String)> = tickets
            .iter()
            .map(|t| (t.id, t.office_aoo.clone()))
            .collect();
        let query = serde_json::to_value(query)?;
        agent_reads::record(&mut conn, read, Read::Search(query), &shown, correlation_id).await?;
    }
    if !matches!(scope, Scope::Office(_)) {
        // Which employee handles it is staff-only, as in the detail.
        for ticket in &mut tickets {
            ticket.assigned_operator = None;
        }
    }
    Ok(Page {
        tickets,
        page,
        per_page,
        has_more,
    })
}

/// The whole conversation of a ticket as the viewer may see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketDetail {
    #[serde(flatten)]
    pub ticket: TicketRecord,
    pub history: Vec<HistoryEntry>,
    pub attachments: Vec<Document>,
    /// `office` (staff: internal notes included) or `citizen`.
    pub viewer: &'static str,
}

/// The side the principal sees the ticket from; refusals say why.
pub(crate) async fn side_on_ticket(
    conn: &mut sqlx::PgConnection,
    principal: &Principal,
    id: Uuid,
) -> Result<Side, TicketError> {
    let parties = documents_store::case_parties(conn, id)
        .await?
        .ok_or(TicketError::NotFound)?;
    let delegations = match principal {
        Principal::Intermediary { tax_code, .. } => {
            documents_store::delegations_of(conn, tax_code.as_str(), &parties.citizen_tax_code)
                .await?
        }
        _ => Vec::new(),
    };
    side_on_case(principal, &parties, &delegations, Utc::now()).ok_or_else(|| {
        TicketError::Forbidden(match principal {
            Principal::Intermediary { .. } => {
                "no active delegation covers this ticket's position".into()
            }
            Principal::Operator { .. } => "this ticket belongs to another office".into(),
            Principal::ContactCenterAgent { .. } => {
                "contact-centre agents do not consult the ticket history".into()
            }
            Principal::Citizen { .. } => "this ticket is not yours".into(),
        })
    })
}

/// One ticket as the viewer may see it. `correlation_id` goes to the audit
/// trail when an agent reads it.
pub async fn detail(
    pool: &PgPool,
    principal: &Principal,
    id: Uuid,
    correlation_id: &str,
) -> Result<TicketDetail, TicketError> {
    let mut conn = pool.acquire().await?;
    let agent = agent_reading(principal)?;
    let side = match &agent {
        // The caller's side, as the caller would see it.
        Some(read) => {
            let parties = documents_store::case_parties(&mut conn, id)
                .await?
                .ok_or(TicketError::NotFound)?;
            read.covers(&parties)
                .map_err(|refusal| TicketError::Forbidden(refusal.to_string()))?;
            Side::Citizen
        }
        None => side_on_ticket(&mut conn, principal, id).await?,
    };
    let mut ticket = store::record(&mut conn, id)
        .await?
        .ok_or(TicketError::NotFound)?;
    let staff = side == Side::Office;
    let mut history = store::history(&mut conn, id, staff).await?;
    if !staff {
        // Citizens see what happened and what the office wrote, not the
        // internal routing or tracing, nor which employee did it.
        ticket.routing_note = None;
        ticket.routed_by = None;
        ticket.correlation_id = None;
        ticket.summary.assigned_operator = None;
        // The request's contact is its submitter's: the citizen of an
        // intermediary's request, or another intermediary of the position,
        // does not get it.
        let submitter = serde_json::from_value::<Principal>(ticket.submitted_by.clone())
            .map(|p| p.actor_key())
            .ok();
        if submitter.as_deref() != Some(principal.actor_key().as_str()) {
            ticket.contact_email = None;
            ticket.contact_phone = None;
        }
        for entry in &mut history {
            entry.actor = crate::documents::kind_only(&entry.actor);
        }
    }
    let mut attachments = documents_store::documents_of_case(&mut conn, id).await?;
    crate::documents::redact_uploaders(&mut attachments, side);
    if let Some(read) = &agent {
        let shown = [(id, ticket.summary.office_aoo.clone())];
        agent_reads::record(&mut conn, read, Read::Detail, &shown, correlation_id).await?;
    }
    Ok(TicketDetail {
        ticket,
        history,
        attachments,
        viewer: if staff { "office" } else { "citizen" },
    })
}

/// A message of the citizen's side (`request.message_added`), kept on its
/// ticket in the caller's transaction with the files it brought (documents
/// of the ticket's case, *uploaded*); returns the events for the outbox
/// (`ticket.message_added`, the documents' `document.state_changed`), or
/// `None` when the message was kept before (nothing written). Who may write
/// is who sees the ticket from the citizen's side; a closed ticket takes no
/// more messages.
pub async fn add_citizen_message(
    conn: &mut sqlx::PgConnection,
    request: &Envelope<MessageAdded>,
    files: &[crate::documents::StoredFile],
) -> Result<Option<Vec<OutboxMessage>>, TicketError> {
    let ticket_id = request.payload.ticket_id;
    if side_on_ticket(conn, &request.principal, ticket_id).await? != Side::Citizen {
        return Err(TicketError::Forbidden(
            "operators write on tickets through the ticket API".into(),
        ));
    }
    let ticket = store::lock(conn, ticket_id)
        .await?
        .ok_or(TicketError::NotFound)?;
    if let Some(reason) = refuse_citizen_message(ticket.state) {
        return Err(TicketError::Invalid(reason.into()));
    }
    let at = Utc::now();
    let actor = serde_json::to_value(&request.principal)?;
    let kept = store::add_citizen_message(
        conn,
        ticket_id,
        request.message_id,
        ticket.state,
        &actor,
        &request.payload.text,
        at,
        &request.correlation_id,
    )
    .await?;
    if !kept {
        return Ok(None);
    }
    // The ticket's case has the ticket's id.
    let mut events = crate::documents::attach_to_case(
        conn,
        ticket_id,
        files,
        &actor,
        at,
        &request.correlation_id,
    )
    .await
    .map_err(|e| match e {
        crate::documents::DocumentError::Database(e) => TicketError::Database(e),
        other => TicketError::Invalid(other.to_string()),
    })?;
    let subject_tax_code = CodiceFiscale::parse(&ticket.subject_tax_code)
        .map_err(|e| TicketError::Invalid(format!("stored ticket: {e}")))?;
    let event = Event {
        message_id: Uuid::now_v7(),
        message_type: "ticket.message_added".into(),
        schema_version: 1,
        occurred_at: at,
        correlation_id: request.correlation_id.clone(),
        causation_id: Some(request.message_id),
        payload: TicketMessageAdded {
            ticket_id,
            subject_tax_code,
            state: ticket.state.as_str().into(),
            office_aoo: ticket.office_aoo,
            author: request.principal.kind().into(),
            attachments: files.len(),
            at,
        },
    };
    events.push(OutboxMessage::event(&event, None)?);
    Ok(Some(events))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActOutcome {
    Applied,
    /// The same action key was already applied: nothing changed this time.
    AlreadyApplied,
}

/// An operator's action on a ticket. `action_key` (a form token or an
/// `Idempotency-Key` header) makes a resent action a no-op.
pub async fn act(
    pool: &PgPool,
    principal: &Principal,
    id: Uuid,
    action: TicketAction,
    action_key: Option<&str>,
    correlation_id: &str,
) -> Result<ActOutcome, TicketError> {
    let Principal::Operator {
        operator_id,
        office,
        ..
    } = principal
    else {
        return Err(TicketError::Forbidden(
            "only operators of the ticket's office change tickets".into(),
        ));
    };
    let operator = Operator {
        id: operator_id.clone(),
        office: office.clone(),
    };
    if action_key.is_some_and(|k| k.is_empty() || k.len() > 200) {
        return Err(TicketError::Invalid(
            "an action key is 1 to 200 characters".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    let ticket = store::lock(&mut tx, id)
        .await?
        .ok_or(TicketError::NotFound)?;
    // Before the office check: a reassignment resent after it succeeded
    // finds the ticket at its new office, and is still a repeat.
    if let Some(key) = action_key {
        if let Some((kind, actor)) = store::action_applied(&mut tx, id, key).await? {
            let same_operator =
                actor.get("operator_id").and_then(|v| v.as_str()) == Some(operator.id.as_str());
            if same_operator && kind == action.kind().as_str() {
                return Ok(ActOutcome::AlreadyApplied);
            }
            return Err(TicketError::Invalid(
                "this action key was used for another action on this ticket".into(),
            ));
        }
    }
    if ticket.office_aoo != operator.office {
        return Err(TicketError::Forbidden(
            "this ticket belongs to another office".into(),
        ));
    }
    let new_desk = match &action {
        TicketAction::Reassign { to_office, .. } => {
            if !store::office_exists(&mut tx, to_office).await? {
                return Err(TicketError::UnknownOffice(to_office.clone()));
            }
            store::routing_table(&mut tx)
                .await?
                .desk_at(to_office, &ticket.ambito)
        }
        _ => None,
    };
    let facts = TicketFacts {
        state: ticket.state,
        office_aoo: ticket.office_aoo.clone(),
    };
    let change = decide(&facts, &operator, action)?;
    let at = Utc::now();
    store::apply(
        &mut tx,
        AppliedChange {
            ticket_id: id,
            change: &change,
            new_desk,
            actor: serde_json::to_value(principal)?,
            at,
            correlation_id,
            action_key,
        },
    )
    .await?;
    let subject = CodiceFiscale::parse(&ticket.subject_tax_code)
        .map_err(|e| TicketError::Invalid(format!("stored ticket: {e}")))?;
    let office_after = change.to_office.as_deref().unwrap_or(&ticket.office_aoo);
    // Read in this transaction: a reassignment names an existing office
    // (checked above) and offices are never deleted.
    let office_is_triage = store::office_is_triage(&mut tx, office_after)
        .await?
        .unwrap_or(false);
    let event = changed_event(
        id,
        &subject,
        HoldingOffice {
            aoo: office_after,
            is_triage: office_is_triage,
        },
        &change,
        &operator,
        correlation_id,
        at,
    );
    outbox::enqueue(
        &mut tx,
        &[OutboxMessage::event(&event, Some(change.kind.as_str()))?],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(ticket_id = %id, change = change.kind.as_str(), operator = %operator.id, %correlation_id, "ticket changed");
    Ok(ActOutcome::Applied)
}

pub async fn offices(pool: &PgPool) -> Result<Vec<Office>, TicketError> {
    let mut conn = pool.acquire().await?;
    Ok(store::offices(&mut conn).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_parameters_are_validated() {
        let query = SearchQuery {
            state: Some("in_carico".into()),
            matricola: Some(" 4901234567 ".into()),
            opened_from: Some("2026-03-29".into()),
            opened_to: Some("2026-03-29".into()),
            q: Some("".into()),
            ..Default::default()
        };
        let (filter, page, per_page) = query.filter().unwrap();
        assert_eq!(filter.state, Some(TicketState::InCarico));
        assert_eq!(filter.matricola.as_deref(), Some("4901234567"));
        assert_eq!(filter.text, None, "an empty form field is no filter");
        // 29 March 2026 is the DST day in Rome: 23 hours long.
        let span = filter.opened_to.unwrap() - filter.opened_from.unwrap();
        assert_eq!(span.num_hours(), 23);
        assert_eq!((page, per_page), (1, DEFAULT_PAGE_SIZE));

        for bad in [
            SearchQuery {
                state: Some("persa".into()),
                ..Default::default()
            },
            SearchQuery {
                opened_from: Some("29/03/2026".into()),
                ..Default::default()
            },
            SearchQuery {
                per_page: Some(1000),
                ..Default::default()
            },
            SearchQuery {
                page: Some(0),
                ..Default::default()
            },
        ] {
            assert!(bad.filter().is_err(), "{bad:?}");
        }
    }
}
