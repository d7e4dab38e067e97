//! Cases, documents and their transitions in PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use sportello_domain::access::CaseParties;

// Delegations were kept here before they had their own module.
pub use super::delegations::{delegations_of, insert_delegation};
use sportello_domain::document::{Direction, DocumentState};

#[derive(Debug, Clone)]
pub struct NewCase {
    pub id: Uuid,
    pub citizen_tax_code: String,
    pub matricola: Option<String>,
    pub office_aoo: String,
    pub subject: String,
}

pub async fn insert_case(conn: &mut PgConnection, case: &NewCase) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cases (id, citizen_tax_code, matricola, office_aoo, subject)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(case.id)
    .bind(&case.citizen_tax_code)
    .bind(&case.matricola)
    .bind(&case.office_aoo)
    .bind(&case.subject)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn case_parties(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<Option<CaseParties>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT citizen_tax_code, matricola, gestione, office_aoo FROM cases WHERE id = $1",
    )
    .bind(case_id)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        Ok(CaseParties {
            citizen_tax_code: row.try_get("citizen_tax_code")?,
            matricola: row.try_get("matricola")?,
            gestione: row.try_get("gestione")?,
            office_aoo: row.try_get("office_aoo")?,
        })
    })
    .transpose()
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Document {
    pub id: Uuid,
    pub case_id: Uuid,
    pub direction: Direction,
    pub file_name: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub state: DocumentState,
    pub conformity_asserted: bool,
    pub uploaded_by: serde_json::Value,
    pub uploaded_at: DateTime<Utc>,
    pub registration_id: Option<Uuid>,
}

fn document_from_row(row: &sqlx::postgres::PgRow) -> Result<Document, sqlx::Error> {
    let bad = |what: &str, raw: String| {
        sqlx::Error::Decode(format!("unknown document {what} `{raw}`").into())
    };
    let direction: String = row.try_get("direction")?;
    let state: String = row.try_get("state")?;
    Ok(Document {
        id: row.try_get("id")?,
        case_id: row.try_get("case_id")?,
        direction: Direction::parse(&direction)
            .ok_or_else(|| bad("direction", direction.clone()))?,
        file_name: row.try_get("file_name")?,
        media_type: row.try_get("media_type")?,
        size_bytes: row.try_get("size_bytes")?,
        sha256: row.try_get("sha256")?,
        state: DocumentState::parse(&state).ok_or_else(|| bad("state", state.clone()))?,
        conformity_asserted: row.try_get("conformity_asserted")?,
        uploaded_by: row.try_get("uploaded_by")?,
        uploaded_at: row.try_get("uploaded_at")?,
        registration_id: row.try_get("registration_id")?,
    })
}

/// A state change to record, with who made it.
#[derive(Debug, Clone)]
pub struct Transition {
    pub document_id: Uuid,
    pub from: Option<DocumentState>,
    pub to: DocumentState,
    pub actor: serde_json::Value,
    pub at: DateTime<Utc>,
    pub correlation_id: String,
}

pub async fn insert_documents(
    conn: &mut PgConnection,
    documents: &[Document],
) -> Result<(), sqlx::Error> {
    for d in documents {
        sqlx::query(
            "INSERT INTO documents (id, case_id, direction, file_name, media_type, size_bytes, sha256,
                                    state, conformity_asserted, uploaded_by, uploaded_at, registration_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(d.id)
        .bind(d.case_id)
        .bind(d.direction.as_str())
        .bind(&d.file_name)
        .bind(&d.media_type)
        .bind(d.size_bytes)
        .bind(&d.sha256)
        .bind(d.state.as_str())
        .bind(d.conformity_asserted)
        .bind(&d.uploaded_by)
        .bind(d.uploaded_at)
        .bind(d.registration_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn documents_of_case(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<Vec<Document>, sqlx::Error> {
    sqlx::query("SELECT * FROM documents WHERE case_id = $1 ORDER BY uploaded_at, id")
        .bind(case_id)
        .fetch_all(conn)
        .await?
        .iter()
        .map(document_from_row)
        .collect()
}

/// The documents, locked until the transaction ends so two changes of one
/// document serialise.
pub async fn lock_documents(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<Document>, sqlx::Error> {
    sqlx::query("SELECT * FROM documents WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(ids)
        .fetch_all(conn)
        .await?
        .iter()
        .map(document_from_row)
        .collect()
}

pub async fn document(conn: &mut PgConnection, id: Uuid) -> Result<Option<Document>, sqlx::Error> {
    sqlx::query("SELECT * FROM documents WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(document_from_row)
        .transpose()
}

/// Applies and records transitions (the caller checked them with the domain).
pub async fn record_transitions(
    conn: &mut PgConnection,
    transitions: &[Transition],
    registration_id: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    for t in transitions {
        if t.from.is_some() {
            sqlx::query(
                "UPDATE documents SET state = $2, registration_id = COALESCE($3, registration_id) WHERE id = $1",
            )
            .bind(t.document_id)
            .bind(t.to.as_str())
            .bind(registration_id)
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query(
            "INSERT INTO document_transitions (document_id, from_state, to_state, actor, at, correlation_id)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(t.document_id)
        .bind(t.from.map(DocumentState::as_str))
        .bind(t.to.as_str())
        .bind(&t.actor)
        .bind(t.at)
        .bind(&t.correlation_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RecordedTransition {
    pub from: Option<String>,
    pub to: String,
    pub actor: serde_json::Value,
    pub at: DateTime<Utc>,
}

pub async fn history(
    conn: &mut PgConnection,
    document_id: Uuid,
) -> Result<Vec<RecordedTransition>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT from_state, to_state, actor, at FROM document_transitions WHERE document_id = $1 ORDER BY id",
    )
    .bind(document_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RecordedTransition {
                from: row.try_get("from_state")?,
                to: row.try_get("to_state")?,
                actor: row.try_get("actor")?,
                at: row.try_get("at")?,
            })
        })
        .collect()
}
