//! The institute's PIN as operations (seed 003): request (web or contact
//! centre) with the first half by SMS, email or PEC and the second by post
//! (`postal`), sign-in with the first half (*PIN semplificato*) or the
//! citizen's own PIN, first use replacing the initial 16 characters, the
//! lock after repeated failures, recovery (`recovery`) and the conversion to
//! *dispositivo* (`conversion`), and for a half that never arrived, where
//! the halves stand and a new PIN in its place (`reissue`). Each operation: parse ▸ domain::pin ▸ one
//! transaction with its `pin.changed` event(s) in the outbox.
//!
//! Sportello issues the citizen's token itself after a PIN sign-in: an
//! HS256 JWT under a key derived from `PIN_SECRET`, issuer `sportello-pin`,
//! `kid` `sportello-pin`, which `auth::Verifier` accepts only for a citizen
//! authenticated by PIN (see ARCHITECTURE.md).

pub mod conversion;
pub mod crypto;
pub mod halves;
pub mod limits;
pub mod postal;
pub mod recovery;
pub mod reissue;
pub mod verification;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::auth::{pin_token_keys, TokenKeys};
use crate::config::Settings;
use crate::contract::pin::{PinChanged, PinRequestBody};
use crate::contract::{Authentication, Channel, CodiceFiscale, Event, PinKind, Principal};
use crate::domain::pin::request::{judge, FieldError, FirstHalfMedium, PinRequest};
use crate::domain::pin::secret::SecretError;
use crate::domain::pin::sign_in::what_to_check;
use crate::domain::pin::{
    Check, ChosenPin, CredentialState, LockPolicy, PresentedPin, SignInRefusal,
};
use crate::domain::refusal::Code;
use crate::store::outbox::{self, OutboxMessage};
use crate::store::pins::{self as store, CredentialRow, NewCredential};
use crypto::PinKeys;
use halves::{Destination, Message};

pub const EVENT_TYPE: &str = "pin.changed";

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// Refused fields, each named.
    #[error("the request is refused: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    #[error("this tax code already has a PIN (L'utente ha già un PIN assegnato): if you lost it, recover it (\"Hai smarrito il PIN?\"); if first use was never done, revoke it at an office and request a new one")]
    AlreadyIssued,
    #[error(transparent)]
    SignIn(#[from] SignInRefusal),
    #[error("recovery works only for a PIN whose first use was completed: for a lost initial PIN, revoke it and request a new one, or go to an INPS office")]
    RecoveryNotAvailable,
    #[error("the contacts given do not match those on record for this tax code")]
    ContactsMismatch,
    #[error(
        "the recovery link is invalid, used or expired: start again from \"Hai smarrito il PIN?\""
    )]
    LinkInvalid,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Reissue(#[from] crate::domain::pin::delivery::ReissueRefusal),
    #[error("hashing: {0}")]
    Crypto(#[from] crypto::CryptoError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("encoding: {0}")]
    Encoding(#[from] serde_json::Error),
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl PinError {
    /// The stable code of the refusal, the same over HTTP and the broker.
    pub fn code(&self) -> Code {
        match self {
            PinError::Invalid(_) => Code::Invalid,
            PinError::AlreadyIssued => Code::PinAlreadyIssued,
            PinError::SignIn(refusal) => match refusal {
                SignInRefusal::Unknown | SignInRefusal::Wrong { .. } => Code::WrongPin,
                SignInRefusal::Locked { .. } => Code::PinLocked,
                SignInRefusal::Revoked => Code::PinRevoked,
                SignInRefusal::FirstUseRequired => Code::FirstUseRequired,
                SignInRefusal::AlreadyReplaced => Code::InitialPinReplaced,
                SignInRefusal::NotSimplified => Code::SimplifiedNotAllowed,
            },
            PinError::RecoveryNotAvailable => Code::RecoveryNotAvailable,
            PinError::ContactsMismatch => Code::ContactsMismatch,
            PinError::LinkInvalid => Code::LinkInvalid,
            PinError::Forbidden(_) => Code::Forbidden,
            PinError::NotFound(_) => Code::NotFound,
            PinError::Conflict(_) => Code::Conflict,
            PinError::Reissue(refusal) => match refusal {
                crate::domain::pin::delivery::ReissueRefusal::NoPin => Code::NoPin,
                crate::domain::pin::delivery::ReissueRefusal::InUse => Code::PinInUse,
                crate::domain::pin::delivery::ReissueRefusal::NothingFailed => Code::NothingFailed,
                crate::domain::pin::delivery::ReissueRefusal::StillTrying(_) => Code::StillSending,
                crate::domain::pin::delivery::ReissueRefusal::NotCurrentHalf => {
                    Code::NotCurrentHalf
                }
                crate::domain::pin::delivery::ReissueRefusal::NotFailed => Code::HalfNotFailed,
                crate::domain::pin::delivery::ReissueRefusal::NoContact(_) => Code::NoSuchContact,
            },
            PinError::Refused(_)
            | PinError::Crypto(_)
            | PinError::Database(_)
            | PinError::Encoding(_) => Code::Internal,
        }
    }

    fn field(field: &str, error: impl ToString) -> Self {
        PinError::Invalid(vec![FieldError::new(field, error.to_string())])
    }

    fn secret(field: &str, error: SecretError) -> Self {
        Self::field(field, error)
    }
}

/// What the PIN operations need: keys, the lock policy, the link base.
pub struct PinService {
    pub keys: PinKeys,
    tokens: TokenKeys,
    pub policy: LockPolicy,
    /// Where the recovery link points (the portal's page, which posts the
    /// token to `POST /pin/recovery/confirmation`).
    pub recovery_base: String,
    pub token_lifetime: Duration,
    /// Attempts per client address, and the wrong ones over every address.
    pub limits: limits::PinLimits,
}

impl PinService {
    pub fn from_settings(settings: &Settings) -> Self {
        let keys = PinKeys::new(&settings.pin_secret);
        let tokens = pin_token_keys(&keys, settings.jwt_leeway_seconds);
        Self {
            keys,
            tokens,
            policy: LockPolicy {
                max_failures: settings.pin_max_failures,
                lock_for: Duration::minutes(i64::from(settings.pin_lock_minutes)),
            },
            recovery_base: settings
                .public_base_url
                .clone()
                .unwrap_or_else(|| "https://www.inps.example".into()),
            token_lifetime: Duration::minutes(30),
            limits: limits::PinLimits::new(
                crate::domain::pin::limits::AddressLimit {
                    per_minute: settings.pin_address_per_minute,
                    burst: settings.pin_address_burst,
                },
                settings.pin_failures_alert_per_minute,
            ),
        }
    }
}

/// A PIN sign-in's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignedIn {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    /// `simplified`, `ordinary` or `dispositivo`.
    pub pin_kind: &'static str,
}

fn kind_name(kind: PinKind) -> &'static str {
    match kind {
        PinKind::Ordinary => "ordinary",
        PinKind::Dispositivo => "dispositivo",
        PinKind::Simplified => "simplified",
    }
}

/// A request's answer: where each half went.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Issued {
    pub tax_code: String,
    pub state: &'static str,
    /// `sms:*****4567`: the medium and the end of the address.
    pub first_half_to: String,
    /// `post`: the letter to the residence.
    pub second_half_to: &'static str,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn event(
    tax_code: &str,
    step: &str,
    channel: Option<Channel>,
    state: CredentialState,
    medium: Option<&str>,
    case_id: Option<Uuid>,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<OutboxMessage, PinError> {
    let tax_code = CodiceFiscale::parse(tax_code)
        .map_err(|e| PinError::Refused(format!("stored tax code: {e}")))?;
    let event = Event {
        message_id: Uuid::now_v7(),
        message_type: EVENT_TYPE.into(),
        schema_version: 1,
        occurred_at: now,
        correlation_id: correlation_id.to_owned(),
        causation_id: None,
        payload: PinChanged {
            tax_code,
            step: step.to_owned(),
            channel: channel.map(|c| c.as_str().to_owned()),
            state: state.as_str().to_owned(),
            medium: medium.map(str::to_owned),
            case_id,
            at: now,
        },
    };
    Ok(OutboxMessage::event(&event, Some(step))?)
}

/// Argon2 off the async threads.
pub(crate) async fn hash(secret: String) -> Result<String, PinError> {
    tokio::task::spawn_blocking(move || crypto::hash(&secret))
        .await
        .map_err(|e| crypto::CryptoError::Hash(e.to_string()))?
        .map_err(PinError::from)
}

pub(crate) async fn verify(phc: Option<String>, secret: String) -> bool {
    let phc = phc.unwrap_or_else(|| crypto::decoy_hash().to_owned());
    tokio::task::spawn_blocking(move || crypto::verify(&phc, &secret))
        .await
        .unwrap_or(false)
}

/// The first-half message for each medium.
fn first_half_message(medium: FirstHalfMedium) -> Message<'static> {
    let text = match medium {
        FirstHalfMedium::Sms => "INPS: la prima parte del tuo PIN è [[PIN]]. La seconda parte arriverà per posta all'indirizzo di residenza.",
        FirstHalfMedium::Email | FirstHalfMedium::Pec => "Gentile cittadino,\n\nla prima parte (8 caratteri) del tuo PIN INPS è: [[PIN]]\n\nI secondi 8 caratteri ti arriveranno con posta ordinaria all'indirizzo di residenza. Al primo utilizzo, il PIN iniziale di 16 caratteri sarà sostituito con uno di 8 caratteri scelto da te.\n\nCon la sola prima parte puoi già accedere con il PIN semplificato alle domande per cui è previsto.\n\nINPS",
    };
    Message {
        rule: "pin-first-half",
        title: "PIN INPS: prima parte inviata",
        centre_body:
            "Ti abbiamo inviato la prima parte del PIN. La seconda parte arriverà per posta.",
        subject: "INPS - Il tuo PIN: prima parte",
        text,
    }
}

/// Requests a PIN over HTTP (web, or a contact-centre agent for the
/// caller): every field judged, then [`issue`] in one transaction.
pub async fn request(
    pool: &PgPool,
    service: &PinService,
    raw: &PinRequestBody,
    channel: Channel,
    correlation_id: &str,
) -> Result<Issued, PinError> {
    let request = judge(raw).map_err(PinError::Invalid)?;
    let mut tx = pool.begin().await?;
    let issued = issue(&mut tx, &service.keys, &request, channel, correlation_id).await?;
    tx.commit().await?;
    Ok(issued)
}

/// Issues the PIN of a judged request in the caller's transaction (the
/// HTTP request's, or the intake's savepoint for a contact centre's
/// `pin.requested`): the credential, the first half's delivery, the
/// letter, the events.
pub async fn issue(
    conn: &mut PgConnection,
    keys: &PinKeys,
    request: &PinRequest,
    channel: Channel,
    correlation_id: &str,
) -> Result<Issued, PinError> {
    let initial = crypto::generate_initial();
    let first_half_hash = hash(initial.first.expose().to_owned()).await?;
    let initial_hash = hash(initial.whole()).await?;
    let now = Utc::now();
    let tax_code = request.tax_code.to_string();
    let sex = match request.sex {
        crate::domain::pin::tax_code::Sex::M => "M",
        crate::domain::pin::tax_code::Sex::F => "F",
    };
    let residence = serde_json::to_value(&request.residence)?;
    let stored = store::insert_credential(
        &mut *conn,
        &NewCredential {
            tax_code: &tax_code,
            first_half_hash: &first_half_hash,
            initial_hash: &initial_hash,
            surname: &request.surname,
            name: &request.name,
            birth_date: request.birth_date,
            sex,
            birthplace_code: &request.birthplace_code,
            birth_municipality: &request.birth_municipality,
            birth_province: &request.birth_province,
            residence,
            home_phone: request.home_phone.as_deref(),
            mobile: request.mobile.as_deref(),
            email: request.email.as_deref(),
            pec: request.pec.as_deref(),
            channel: channel.as_str(),
            at: now,
        },
    )
    .await?;
    if !stored {
        return Err(PinError::AlreadyIssued);
    }
    let address = request
        .first_half_address()
        .ok_or_else(|| PinError::field("first_half_to", "the chosen contact is not given"))?;
    let to = match request.first_half_to {
        FirstHalfMedium::Sms => Destination::sms(address),
        FirstHalfMedium::Email => Destination::email(address),
        FirstHalfMedium::Pec => Destination::pec(address),
    };
    halves::queue(
        &mut *conn,
        keys,
        &tax_code,
        &to,
        &first_half_message(request.first_half_to),
        initial.first.expose(),
        correlation_id,
        now,
    )
    .await?;
    let recipient = format!("{} {}", request.name, request.surname);
    postal::queue(
        &mut *conn,
        keys,
        &tax_code,
        &recipient,
        &request.residence,
        &initial.second,
        now,
    )
    .await?;
    let issued = CredentialState::Issued;
    let events = [
        event(
            &tax_code,
            "requested",
            Some(channel),
            issued,
            None,
            None,
            correlation_id,
            now,
        )?,
        event(
            &tax_code,
            "first_half_queued",
            Some(channel),
            issued,
            Some(to.label),
            None,
            correlation_id,
            now,
        )?,
        event(
            &tax_code,
            "second_half_queued",
            Some(channel),
            issued,
            Some("post"),
            None,
            correlation_id,
            now,
        )?,
    ];
    outbox::enqueue(&mut *conn, &events).await?;
    tracing::info!(
        channel = channel.as_str(),
        first_half = to.label,
        correlation_id,
        "PIN requested and issued"
    );
    Ok(Issued {
        tax_code,
        state: issued.as_str(),
        first_half_to: to.masked(),
        second_half_to: "post",
    })
}

fn parse_tax_code(raw: &str) -> Result<CodiceFiscale, PinError> {
    CodiceFiscale::parse(raw).map_err(|e| PinError::field("tax_code", e))
}

fn state_of(row: &CredentialRow) -> Result<CredentialState, PinError> {
    CredentialState::parse(&row.state)
        .ok_or_else(|| PinError::Refused(format!("unknown PIN state `{}`", row.state)))
}

/// Checks `presented` against the credential under its lock; a wrong PIN is
/// counted (and may lock) and committed before the refusal is returned.
/// On success the counters are reset and the transaction is handed back.
async fn checked(
    pool: &PgPool,
    service: &PinService,
    tax_code: &CodiceFiscale,
    presented: &PresentedPin,
    correlation_id: &str,
    step: limits::Step,
) -> Result<
    (
        sqlx::Transaction<'static, sqlx::Postgres>,
        CredentialRow,
        Check,
    ),
    PinError,
> {
    checked_as(
        pool,
        service,
        tax_code,
        presented,
        correlation_id,
        step,
        |state, row| what_to_check(state, presented, !row.ever_activated),
    )
    .await
}

/// [`checked`], with `decide` choosing the hash to compare (or refusing
/// before any is compared: such a refusal costs no attempt).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn checked_as(
    pool: &PgPool,
    service: &PinService,
    tax_code: &CodiceFiscale,
    presented: &PresentedPin,
    correlation_id: &str,
    step: limits::Step,
    decide: impl FnOnce(CredentialState, &CredentialRow) -> Result<Check, SignInRefusal>,
) -> Result<
    (
        sqlx::Transaction<'static, sqlx::Postgres>,
        CredentialRow,
        Check,
    ),
    PinError,
> {
    let now = Utc::now();
    let mut tx = pool.begin().await?;
    let Some(row) = store::lock_credential(&mut tx, tax_code.as_str()).await? else {
        // As long as a wrong PIN: no hint that the tax code has none.
        verify(None, presented.expose().to_owned()).await;
        service.limits.failed(step);
        return Err(SignInRefusal::Unknown.into());
    };
    if let Some(until) = service.policy.locked(row.locked_until, now) {
        return Err(SignInRefusal::Locked { until }.into());
    }
    let state = state_of(&row)?;
    let check = decide(state, &row)?;
    let (phc, typed) = match check {
        Check::FirstHalf => (row.first_half_hash.clone(), presented.generated_form()),
        Check::Initial => (row.initial_hash.clone(), presented.generated_form()),
        Check::Chosen => (row.pin_hash.clone(), presented.expose().to_owned()),
    };
    if verify(phc, typed).await {
        store::record_success(&mut tx, tax_code.as_str()).await?;
        return Ok((tx, row, check));
    }
    service.limits.failed(step);
    let failures = u32::try_from(row.failures).unwrap_or(0) + 1;
    let locks = u32::try_from(row.locks_in_a_row).unwrap_or(0);
    let locked_until = service.policy.after_failure(failures, locks, now);
    store::record_failure(&mut tx, tax_code.as_str(), failures as i32, locked_until).await?;
    let mut events = vec![event(
        tax_code.as_str(),
        "sign_in_failed",
        None,
        state,
        None,
        None,
        correlation_id,
        now,
    )?];
    if locked_until.is_some() {
        events.push(event(
            tax_code.as_str(),
            "locked",
            None,
            state,
            None,
            None,
            correlation_id,
            now,
        )?);
    }
    outbox::enqueue(&mut tx, &events).await?;
    tx.commit().await?;
    tracing::info!(
        failures,
        locked = locked_until.is_some(),
        correlation_id,
        "PIN sign-in refused: wrong PIN"
    );
    Err(match locked_until {
        Some(until) => SignInRefusal::Locked { until },
        None => SignInRefusal::Wrong {
            failures,
            locked_until,
        },
    }
    .into())
}

async fn kind_after_first_use(
    conn: &mut PgConnection,
    tax_code: &str,
) -> Result<PinKind, PinError> {
    Ok(if store::is_dispositivo(conn, tax_code).await? {
        PinKind::Dispositivo
    } else {
        PinKind::Ordinary
    })
}

fn token(
    service: &PinService,
    tax_code: &CodiceFiscale,
    kind: PinKind,
) -> Result<SignedIn, PinError> {
    let principal = Principal::Citizen {
        tax_code: tax_code.clone(),
        authentication: Authentication::Pin { pin_kind: kind },
    };
    let access_token = service
        .tokens
        .issue(&principal, service.token_lifetime)
        .map_err(|e| PinError::Refused(format!("token: {e}")))?;
    Ok(SignedIn {
        access_token,
        token_type: "Bearer",
        expires_in: service.token_lifetime.num_seconds(),
        pin_kind: kind_name(kind),
    })
}

/// Signs in with the first half (simplified) or the citizen's own PIN.
pub async fn sign_in(
    pool: &PgPool,
    service: &PinService,
    tax_code: &str,
    pin: &str,
    correlation_id: &str,
) -> Result<SignedIn, PinError> {
    let tax_code = parse_tax_code(tax_code)?;
    let presented = PresentedPin::parse(pin).map_err(|e| PinError::secret("pin", e))?;
    let (mut tx, _row, check) = checked(
        pool,
        service,
        &tax_code,
        &presented,
        correlation_id,
        limits::Step::SignIn,
    )
    .await?;
    let now = Utc::now();
    let (kind, step, state) = match check {
        Check::FirstHalf => (
            PinKind::Simplified,
            "simplified_sign_in",
            CredentialState::Issued,
        ),
        Check::Chosen => (
            kind_after_first_use(&mut tx, tax_code.as_str()).await?,
            "signed_in",
            CredentialState::Active,
        ),
        Check::Initial => {
            // Right, but it must be replaced first: nothing to commit but
            // the reset counters.
            tx.commit().await?;
            return Err(SignInRefusal::FirstUseRequired.into());
        }
    };
    outbox::enqueue(
        &mut tx,
        &[event(
            tax_code.as_str(),
            step,
            None,
            state,
            None,
            None,
            correlation_id,
            now,
        )?],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(pin_kind = kind_name(kind), correlation_id, "PIN sign-in");
    token(service, &tax_code, kind)
}

/// First use: the 16-character initial PIN and the new 8-character one.
pub async fn first_use(
    pool: &PgPool,
    service: &PinService,
    tax_code: &str,
    pin: &str,
    new_pin: &str,
    correlation_id: &str,
) -> Result<SignedIn, PinError> {
    let tax_code = parse_tax_code(tax_code)?;
    let presented = PresentedPin::parse(pin).map_err(|e| PinError::secret("pin", e))?;
    if !matches!(presented, PresentedPin::Sixteen(_)) {
        return Err(PinError::field(
            "pin",
            "first use takes all 16 characters of the initial PIN",
        ));
    }
    let chosen = ChosenPin::parse(new_pin, &presented.generated_form())
        .map_err(|e| PinError::secret("new_pin", e))?;
    let pin_hash = hash(chosen.expose().to_owned()).await?;
    // Sixteen characters are checked against the initial PIN only
    // (`what_to_check`): an active or revoked PIN is refused before.
    let (mut tx, _row, _) = checked(
        pool,
        service,
        &tax_code,
        &presented,
        correlation_id,
        limits::Step::FirstUse,
    )
    .await?;
    store::activate(&mut tx, tax_code.as_str(), &pin_hash).await?;
    let kind = kind_after_first_use(&mut tx, tax_code.as_str()).await?;
    let now = Utc::now();
    outbox::enqueue(
        &mut tx,
        &[event(
            tax_code.as_str(),
            "first_use_completed",
            None,
            CredentialState::Active,
            None,
            None,
            correlation_id,
            now,
        )?],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(correlation_id, "PIN first use completed");
    token(service, &tax_code, kind)
}

/// Revokes a PIN (*revoca*): by an operator at an office (a citizen who
/// lost the initial PIN), or by the citizen themselves signed in with
/// another credential or their PIN. A new request can follow.
pub async fn revoke(
    pool: &PgPool,
    principal: &Principal,
    tax_code: &str,
    correlation_id: &str,
) -> Result<(), PinError> {
    let tax_code = parse_tax_code(tax_code)?;
    match principal {
        Principal::Operator { .. } => {}
        Principal::Citizen {
            tax_code: own,
            authentication,
        } if *own == tax_code => {
            if matches!(
                authentication,
                Authentication::Pin {
                    pin_kind: PinKind::Simplified
                }
            ) {
                return Err(PinError::Forbidden(
                    "the simplified PIN cannot revoke: sign in otherwise, or go to an office"
                        .into(),
                ));
            }
        }
        _ => {
            return Err(PinError::Forbidden(
                "a PIN is revoked by its citizen or by an operator at an office".into(),
            ))
        }
    }
    let now = Utc::now();
    let mut tx = pool.begin().await?;
    store::lock_credential(&mut tx, tax_code.as_str()).await?;
    if !store::revoke(&mut tx, tax_code.as_str()).await? {
        return Err(PinError::Conflict(
            "no PIN to revoke for this tax code".into(),
        ));
    }
    outbox::enqueue(
        &mut tx,
        &[event(
            tax_code.as_str(),
            "revoked",
            None,
            CredentialState::Revoked,
            None,
            None,
            correlation_id,
            now,
        )?],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(by = principal.kind(), correlation_id, "PIN revoked");
    Ok(())
}
