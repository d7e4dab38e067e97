//! Handlers of the applications API: the applicant's applications, their
//! state and receipt, the benefits, and the caller's menu (the Cassetto's).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;

use super::{ApiError, ApiState, Caller};
use crate::applications::{self, Receipt};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/applications").route(web::get().to(list)))
        .service(web::resource("/applications/benefits").route(web::get().to(benefits)))
        .service(web::resource("/applications/{id}").route(web::get().to(detail)))
        .service(web::resource("/applications/{id}/receipt").route(web::get().to(receipt_json)))
        .service(web::resource("/applications/{id}/receipt.pdf").route(web::get().to(receipt_pdf)))
        .service(web::resource("/catalogue").route(web::get().to(catalogue)));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// For an intermediary: the citizen whose applications to list.
    citizen: Option<String>,
    /// The `message_id` of the `application.submitted` a channel published.
    message_id: Option<Uuid>,
}

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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "applications": found })))
}

pub async fn detail(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let found = applications::detail(&state.pool, &caller.principal, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(found))
}

pub async fn receipt_json(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let found = applications::detail(&state.pool, &caller.principal, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(Receipt::of(&found)))
}

pub async fn receipt_pdf(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let found = applications::detail(&state.pool, &caller.principal, path.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"ricevuta-domanda-{}.pdf\"",
                found.view.id
            ),
        ))
        .body(Receipt::of(&found).pdf()))
}

pub async fn benefits(_caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(serde_json::json!({ "benefits": applications::benefits()? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueQuery {
    /// The type of the contribution position being worked on
    /// (`azienda_uniemens`, `artigiano`, `commerciante`, `gestione_separata`, `agricolo`).
    position_type: Option<String>,
}

pub async fn catalogue(
    caller: Caller,
    query: web::Query<CatalogueQuery>,
) -> Result<HttpResponse, ApiError> {
    let services = applications::catalogue(&caller.principal, query.position_type.as_deref())?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "services": services })))
}
