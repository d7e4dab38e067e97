//! The audit trail of contact-centre agents reading their caller's tickets:
//! each read is recorded on the connection that served it, before the answer
//! leaves (no record, no answer); operators of an office page through the
//! reads that showed their office's tickets.

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{TicketError, DEFAULT_PAGE_SIZE, MAX_PAGE, MAX_PAGE_SIZE};
use crate::contract::{CodiceFiscale, Principal};
use crate::domain::access::AgentRead;
use crate::store::agent_reads::{self as store, AgentReadRecord, NewAgentRead};

/// What an agent read.
pub enum Read {
    /// The history search, with its parameters.
    Search(serde_json::Value),
    /// One ticket.
    Detail,
}

/// Records `read` of `shown` (ticket id, its office now).
pub async fn record(
    conn: &mut PgConnection,
    read: &AgentRead,
    what: Read,
    shown: &[(Uuid, String)],
    correlation_id: &str,
) -> Result<(), TicketError> {
    let (what, query) = match what {
        Read::Search(query) => ("ticket_search", Some(query)),
        Read::Detail => ("ticket_detail", None),
    };
    store::insert(
        conn,
        &NewAgentRead {
            agent_id: &read.agent_id,
            citizen_tax_code: read.citizen.as_str(),
            identified_by: read.identified_by.as_str(),
            what,
            ticket_ids: shown.iter().map(|(id, _)| *id).collect(),
            offices: shown.iter().map(|(_, office)| office.clone()).collect(),
            query,
            // Ticket reads never admit the simplified PIN.
            pin_verification_id: None,
            correlation_id,
        },
    )
    .await?;
    tracing::info!(
        agent = %read.agent_id,
        identified_by = read.identified_by.as_str(),
        what,
        tickets = shown.len(),
        %correlation_id,
        "agent read recorded"
    );
    Ok(())
}

/// `GET /agent-reads` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only reads about this citizen.
    pub citizen: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditPage {
    pub reads: Vec<AgentReadRecord>,
    pub page: u32,
    pub per_page: u32,
    pub has_more: bool,
}

/// The reads that showed tickets of the operator's own office, newest
/// first; nobody else may look.
pub async fn audit(
    pool: &PgPool,
    principal: &Principal,
    query: &AuditQuery,
) -> Result<AuditPage, TicketError> {
    let Principal::Operator { office, .. } = principal else {
        return Err(TicketError::Forbidden(
            "only operators of an office read the agents' audit trail".into(),
        ));
    };
    let citizen = query
        .citizen
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            CodiceFiscale::parse(&c.to_uppercase())
                .map_err(|e| TicketError::Invalid(format!("citizen: {e}")))
        })
        .transpose()?;
    let page = query.page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(TicketError::Invalid(format!(
            "page must be between 1 and {MAX_PAGE}"
        )));
    }
    let per_page = query.per_page.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&per_page) {
        return Err(TicketError::Invalid(format!(
            "per_page must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    let mut conn = pool.acquire().await?;
    let offset = i64::from(page - 1) * i64::from(per_page);
    let (reads, has_more) = store::of_office(
        &mut conn,
        office,
        citizen.as_ref().map(CodiceFiscale::as_str),
        offset,
        i64::from(per_page),
    )
    .await?;
    Ok(AuditPage {
        reads,
        page,
        per_page,
        has_more,
    })
}
