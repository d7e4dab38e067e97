//! Handlers of the applications API: the applicant's applications, their
//! state and receipt, the benefits, and the caller's menu (the Cassetto's).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use uuid::Uuid;

use super::documents::pdf_download;
use super::endpoint::{api, Endpoint};
use super::problem::{Forbidden, NotFound};
use super::{ApiError, ApiState, Caller};
use crate::applications::{self, Receipt};

pub(super) fn endpoints() -> Vec<Endpoint> {
    use actix_web::http::Method as M;
    vec![
        api("/applications", M::GET, list),
        api("/applications/benefits", M::GET, benefits),
        api("/applications/{id}", M::GET, detail),
        api("/applications/{id}/receipt", M::GET, receipt_json),
        api("/applications/{id}/receipt.pdf", M::GET, receipt_pdf),
        api("/catalogue", M::GET, catalogue),
    ]
}

/// An application as listed (abridged example).
macro_rules! application_example {
    () => {
        json!({
            "id": "0193a1f0-0000-7000-8000-000000000001",
            "state": "registered",
            "state_label": "Protocollata",
            "citizen_tax_code": "RSSMRA85T10A562S",
            "benefit": "covid19_indemnity",
            "category": "seasonal_tourism_spa",
            "ticket_id": "0193a1f0-0000-7000-8000-000000000002",
            "message_id": "0193a1c2-7f0e-7b6a-9d2e-5c4b3a29aa01",
            "signature": "INPS.1901.29/11/2026.0000001",
            "office_aoo": "1901",
            "iban": "IT60X0542811101000000123456",
            "credential": "spid2"
        })
    };
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// For an intermediary: the citizen whose applications to list.
    citizen: Option<String>,
    /// The `message_id` of the `application.submitted` a channel published.
    message_id: Option<Uuid>,
}

#[utoipa::path(
    get,
    path = "/applications",
    operation_id = "list_applications",
    tag = "applications",
    description = "The caller's citizen's applications, newest first (an intermediary names the citizen and needs a delegation for the person), or the one a channel's `application.submitted` made (`message_id`; empty while it waits in the queue).",
    params(ListQuery),
    responses(
        (status = 200, description = "Applications with their state", body = serde_json::Value, example = json!({"applications": [application_example!()]})),
        (status = 403, response = Forbidden),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let found = applications::list(
        &state.pool,
        &caller.principal,
        query.citizen.as_deref(),
        query.message_id,
    )
    .await?;
    let shown: Vec<_> = found.iter().collect();
    audit(&state, &caller, applications::AgentRead::List, &shown).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "applications": found })))
}

#[utoipa::path(
    get,
    path = "/applications/{id}",
    operation_id = "application_detail",
    tag = "applications",
    description = "One application with its state (`registered`, `in_review`, `approved`, `rejected`, `answered`). Its applicant, an agent for them, an intermediary with a delegation for the person, operators of the office holding its case; anyone else gets 404.",
    params(("id" = Uuid, Path, description = "The application")),
    responses(
        (status = 200, description = "The application", body = serde_json::Value, example = json!(application_example!())),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = []))
)]
pub async fn detail(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let found = applications::detail(&state.pool, &caller.principal, path.into_inner()).await?;
    audit(&state, &caller, applications::AgentRead::Detail, &[&found]).await?;
    Ok(HttpResponse::Ok().json(found))
}

#[utoipa::path(
    get,
    path = "/applications/{id}/receipt",
    operation_id = "application_receipt",
    tag = "applications",
    description = "The registered receipt: protocol number, date, benefit, category, applicant, the IBAN's last four characters, the state. Readers as for the application.",
    params(("id" = Uuid, Path, description = "The application")),
    responses(
        (status = 200, description = "The receipt", body = serde_json::Value, example = json!({
            "application_id": "0193a1f0-0000-7000-8000-000000000001",
            "signature": "INPS.1901.29/11/2026.0000001",
            "registered_at": "2026-11-29T10:00:00Z",
            "benefit": "Indennità COVID-19 (DL 18/2020)",
            "category": "Lavoratori stagionali del turismo e degli stabilimenti termali (art. 29)",
            "applicant": {"tax_code": "RSSMRA85T10A562S", "surname": "Rossi", "name": "Mario"},
            "iban": "IT…3456",
            "state": "registered"
        })),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = []))
)]
pub async fn receipt_json(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let found = applications::detail(&state.pool, &caller.principal, path.into_inner()).await?;
    audit(&state, &caller, applications::AgentRead::Detail, &[&found]).await?;
    Ok(HttpResponse::Ok().json(Receipt::of(&found)))
}

#[utoipa::path(
    get,
    path = "/applications/{id}/receipt.pdf",
    operation_id = "application_receipt_pdf",
    tag = "applications",
    description = "The registered receipt as PDF. Readers as for the application.",
    params(("id" = Uuid, Path, description = "The application")),
    responses(
        (status = 200, description = "The receipt", content_type = "application/pdf", body = Vec<u8>),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = []))
)]
pub async fn receipt_pdf(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let found = applications::detail(&state.pool, &caller.principal, path.into_inner()).await?;
    audit(&state, &caller, applications::AgentRead::Detail, &[&found]).await?;
    Ok(pdf_download(
        &format!("ricevuta-domanda-{}.pdf", found.view.id),
        Receipt::of(&found).pdf(),
    ))
}

#[utoipa::path(
    get,
    path = "/applications/benefits",
    operation_id = "list_benefits",
    tag = "applications",
    description = "The benefits open to applications, their categories and each category's fields, and the submission windows (data: `workers/config/applications.json`).",
    responses(
        (status = 200, description = "Benefits", body = serde_json::Value, example = json!({"benefits": [{"id": "babysitting_bonus", "label": "Bonus per i servizi di baby-sitting (DL 18/2020, art. 23)", "ambito": "ammortizzatori_sociali", "opening": {"from": "2020-04-01", "until": null}, "windows": [], "categories": []}]})),
    ),
    security(("bearer" = []))
)]
pub async fn benefits(_caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(serde_json::json!({ "benefits": applications::benefits()? })))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CatalogueQuery {
    /// The type of the contribution position being worked on
    /// (`azienda_uniemens`, `artigiano`, `commerciante`, `gestione_separata`, `agricolo`).
    position_type: Option<String>,
}

#[utoipa::path(
    get,
    path = "/catalogue",
    operation_id = "catalogue",
    tag = "applications",
    description = "The caller's menu (the Cassetto's, seed 002): the services the caller's profile sees for a type of contribution position, each `available` or with the credentials it `requires`.",
    params(CatalogueQuery),
    responses(
        (status = 200, description = "The menu", body = serde_json::Value, example = json!({"services": [
            {"id": "application.covid19_indemnity", "label": "Indennità COVID-19", "group": "Domande", "path": "/domande/indennita-covid-19", "available": true},
            {"id": "tickets", "label": "Comunicazione bidirezionale", "group": "Assistenza", "path": "/comunicazione-bidirezionale", "available": false, "requires": ["spid2", "cie", "cns", "eidas", "pin_dispositivo"]}
        ]})),
    ),
    security(("bearer" = []))
)]
pub async fn catalogue(
    caller: Caller,
    query: web::Query<CatalogueQuery>,
) -> Result<HttpResponse, ApiError> {
    let services = applications::catalogue(&caller.principal, query.position_type.as_deref())?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "services": services })))
}

/// An agent's read is recorded before its answer leaves.
async fn audit(
    state: &ApiState,
    caller: &Caller,
    what: applications::AgentRead,
    shown: &[&applications::Application],
) -> Result<(), ApiError> {
    applications::record_agent_read(
        &state.pool,
        &caller.principal,
        what,
        shown,
        caller.pin_verification,
        &caller.correlation_id,
    )
    .await?;
    Ok(())
}
