//! Applications over HTTP: the applicant's list and each application's state
//! and receipt, the benefits with their fields, and the Cassetto's menu.
//! Who may read an application: its applicant (with a credential the
//! consultation service accepts), an agent acting for them, an intermediary
//! holding a delegation from them, an operator of the office holding its case.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::contract::Principal;
use crate::domain::application::catalogue::{menu, MenuEntry};
use crate::domain::application::policy::PrincipalKind;
use crate::domain::application::{
    benefits::Benefit, submitting_credential, ApplicationRules, CONSULTATION_SERVICE,
};
use crate::domain::cron::TIME_ZONE;
use crate::store::applications::{self as store, ApplicationView};

#[derive(Debug, thiserror::Error)]
pub enum ApplicationError {
    #[error("no such application")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the applications policy could not be read: {0}")]
    Policy(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Where an application is, as its applicant reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationState {
    /// Registered with its protocol number; waiting for the office.
    Registered,
    /// An operator took it in charge.
    InReview,
    /// Closed with esito *accolta*.
    Approved,
    /// Closed with esito *respinta*: booking an appointment becomes possible.
    Rejected,
    /// Closed with esito *evasa* (answered without a grant or a refusal).
    Answered,
}

impl ApplicationState {
    fn of(view: &ApplicationView) -> ApplicationState {
        match (view.ticket_state.as_str(), view.outcome.as_deref()) {
            ("chiusa", Some("accolta")) => ApplicationState::Approved,
            ("chiusa", Some("respinta")) => ApplicationState::Rejected,
            ("chiusa", _) => ApplicationState::Answered,
            ("in_carico", _) => ApplicationState::InReview,
            _ => ApplicationState::Registered,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ApplicationState::Registered => "Protocollata",
            ApplicationState::InReview => "In istruttoria",
            ApplicationState::Approved => "Accolta",
            ApplicationState::Rejected => "Respinta",
            ApplicationState::Answered => "Definita",
        }
    }
}

/// An application as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Application {
    pub state: ApplicationState,
    pub state_label: &'static str,
    #[serde(flatten)]
    pub view: ApplicationView,
}

impl From<ApplicationView> for Application {
    fn from(view: ApplicationView) -> Application {
        let state = ApplicationState::of(&view);
        Application {
            state,
            state_label: state.label(),
            view,
        }
    }
}

fn rules() -> Result<&'static ApplicationRules, ApplicationError> {
    ApplicationRules::shipped().map_err(ApplicationError::Policy)
}

/// May `principal` read the applications of `citizen` (held by `office`)?
async fn authorize(
    pool: &PgPool,
    principal: &Principal,
    citizen: &str,
    office: Option<&str>,
) -> Result<(), ApplicationError> {
    let refuse = || Err(ApplicationError::Forbidden("not your application".into()));
    match principal {
        Principal::Citizen { tax_code, .. } if tax_code.as_str() == citizen => {
            let service = rules()?.service(CONSULTATION_SERVICE).ok_or_else(|| {
                ApplicationError::Policy(format!("no `{CONSULTATION_SERVICE}` service"))
            })?;
            service
                .admits(submitting_credential(principal))
                .map_err(ApplicationError::Forbidden)
        }
        Principal::ContactCenterAgent { on_behalf_of, .. } if on_behalf_of.as_str() == citizen => {
            Ok(())
        }
        Principal::Intermediary { tax_code, .. } => {
            let mut conn = pool.acquire().await?;
            let pair = (tax_code.to_string(), citizen.to_owned());
            if store::represented(&mut conn, std::slice::from_ref(&pair))
                .await?
                .is_empty()
            {
                refuse()
            } else {
                Ok(())
            }
        }
        Principal::Operator { office: own, .. } if Some(own.as_str()) == office => Ok(()),
        _ => refuse(),
    }
}

/// The applications of the caller's citizen (`citizen` names them for an
/// intermediary), newest first; or the one a channel's message made.
pub async fn list(
    pool: &PgPool,
    principal: &Principal,
    citizen: Option<&str>,
    message_id: Option<Uuid>,
) -> Result<Vec<Application>, ApplicationError> {
    if let Some(message_id) = message_id {
        let Some(view) = store::by_message(pool, message_id).await? else {
            return Ok(Vec::new());
        };
        authorize(
            pool,
            principal,
            &view.citizen_tax_code,
            Some(&view.office_aoo),
        )
        .await?;
        return Ok(vec![view.into()]);
    }
    let citizen = match (principal, citizen) {
        (Principal::Intermediary { .. }, Some(citizen)) => citizen.to_owned(),
        (Principal::Intermediary { .. }, None) => {
            return Err(ApplicationError::Invalid(
                "an intermediary names the citizen: ?citizen=CODICEFISCALE".into(),
            ))
        }
        (Principal::Operator { .. }, _) => {
            return Err(ApplicationError::Forbidden(
                "operators work applications as tickets (GET /tickets)".into(),
            ))
        }
        (principal, _) => principal
            .subject_tax_code()
            .map(ToString::to_string)
            .ok_or_else(|| ApplicationError::Forbidden("no citizen to list".into()))?,
    };
    authorize(pool, principal, &citizen, None).await?;
    Ok(store::of_citizen(pool, &citizen)
        .await?
        .into_iter()
        .map(Application::from)
        .collect())
}

pub async fn detail(
    pool: &PgPool,
    principal: &Principal,
    id: Uuid,
) -> Result<Application, ApplicationError> {
    let view = store::by_id(pool, id)
        .await?
        .ok_or(ApplicationError::NotFound)?;
    // Another person's application is "not found", not "forbidden": its
    // existence is not the caller's business.
    authorize(
        pool,
        principal,
        &view.citizen_tax_code,
        Some(&view.office_aoo),
    )
    .await
    .map_err(|e| match e {
        ApplicationError::Forbidden(_) => ApplicationError::NotFound,
        other => other,
    })?;
    Ok(view.into())
}

/// What an agent read of its caller's applications.
#[derive(Debug, Clone, Copy)]
pub enum AgentRead {
    List,
    Detail,
}

/// Records a contact-centre agent's read of `shown` in the audit trail of
/// agents' reads (`agent_reads`, beside its reads of tickets), before the
/// answer leaves: no record, no answer. Anyone else's reads pass.
/// `pin_verification` is the check of the caller's PIN half the agent read
/// on, when it read on the simplified PIN.
pub async fn record_agent_read(
    pool: &PgPool,
    principal: &Principal,
    what: AgentRead,
    shown: &[&Application],
    pin_verification: Option<Uuid>,
    correlation_id: &str,
) -> Result<(), ApplicationError> {
    let Principal::ContactCenterAgent {
        agent_id,
        on_behalf_of,
        identified_by,
        ..
    } = principal
    else {
        return Ok(());
    };
    // The access policy admits no unidentified agent to applications.
    let identified_by = identified_by.ok_or_else(|| {
        ApplicationError::Forbidden("the caller is not identified (identified_by)".into())
    })?;
    let what = match what {
        AgentRead::List => "application_list",
        AgentRead::Detail => "application_detail",
    };
    let mut conn = pool.acquire().await?;
    crate::store::agent_reads::insert(
        &mut conn,
        &crate::store::agent_reads::NewAgentRead {
            agent_id,
            citizen_tax_code: on_behalf_of.as_str(),
            identified_by: identified_by.as_str(),
            what,
            ticket_ids: shown.iter().map(|a| a.view.ticket_id).collect(),
            offices: shown.iter().map(|a| a.view.office_aoo.clone()).collect(),
            query: None,
            pin_verification_id: pin_verification,
            correlation_id,
        },
    )
    .await?;
    tracing::info!(agent = %agent_id, what, applications = shown.len(), correlation_id, "agent read recorded");
    Ok(())
}

/// The registered receipt (*ricevuta*) of an application.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub application_id: Uuid,
    /// *Segnatura*: the protocol number.
    pub signature: String,
    pub registered_at: DateTime<Utc>,
    pub benefit: String,
    pub category: String,
    pub applicant: serde_json::Value,
    /// Only the last four characters: a receipt travels.
    pub iban: String,
    pub state: ApplicationState,
}

impl Receipt {
    pub fn of(application: &Application) -> Receipt {
        let view = &application.view;
        let rules = rules().ok();
        let benefit = rules.and_then(|r| r.benefit(&view.benefit));
        let category = benefit
            .and_then(|b| b.categories.iter().find(|c| c.id == view.category))
            .map_or_else(|| view.category.clone(), |c| c.label.clone());
        // An IBAN is ASCII: byte offsets are character offsets.
        let tail = &view.iban[view.iban.len().saturating_sub(4)..];
        Receipt {
            application_id: view.id,
            signature: view.signature.clone(),
            registered_at: view.registered_at,
            benefit: benefit.map_or_else(|| view.benefit.clone(), |b| b.label.clone()),
            category,
            applicant: view.applicant.clone(),
            iban: format!("{}…{tail}", &view.iban[..view.iban.len().min(2)]),
            state: application.state,
        }
    }

    pub fn pdf(&self) -> Vec<u8> {
        let at = self.registered_at.with_timezone(&TIME_ZONE);
        let field = |key: &str| self.applicant[key].as_str().unwrap_or_default().to_owned();
        let lines = vec![
            format!("Protocollo: {}", self.signature),
            format!("Data: {}", at.format("%d/%m/%Y %H:%M")),
            format!("Domanda: {}", self.benefit),
            format!("Categoria: {}", self.category),
            format!(
                "Richiedente: {} {} - {}",
                field("name"),
                field("surname"),
                field("tax_code")
            ),
            format!("IBAN: {}", self.iban),
            format!("Stato: {}", self.state.label()),
        ];
        crate::documents::receipt::lines_pdf(
            "INPS - Ricevuta di presentazione della domanda",
            &lines,
        )
    }
}

/// The benefits open to applications, with categories and fields.
pub fn benefits() -> Result<&'static [Benefit], ApplicationError> {
    Ok(&rules()?.benefits)
}

/// The caller's menu for a position type.
pub fn catalogue(
    principal: &Principal,
    position_type: Option<&str>,
) -> Result<Vec<MenuEntry<'static>>, ApplicationError> {
    let profile = PrincipalKind::parse(principal.kind())
        .ok_or_else(|| ApplicationError::Invalid("unknown principal".into()))?;
    Ok(menu(
        &rules()?.services,
        profile,
        position_type,
        submitting_credential(principal),
    ))
}
