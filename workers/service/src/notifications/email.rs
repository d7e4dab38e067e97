//! Email over SMTP (lettre) with a pool of connections: multipart text +
//! HTML, the institute's sender, and a Message-ID derived from the delivery,
//! so a resend after an interrupted attempt carries the same id.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::domain::notification::SendOutcome;
use crate::store::notifications::ClaimedDelivery;

#[derive(Debug, thiserror::Error)]
pub enum EmailSetupError {
    #[error("SMTP_URL: {0}")]
    Url(#[from] lettre::transport::smtp::Error),
    #[error("MAIL_FROM {0:?} is not a mailbox: {1}")]
    From(String, lettre::address::AddressError),
}

pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    message_id_domain: String,
}

impl EmailSender {
    /// `smtp_url` as lettre reads it: `smtp://host:port` (plain, local sinks),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://...` (TLS).
    pub fn new(
        smtp_url: &str,
        from: &str,
        pool_size: u32,
        timeout: Duration,
    ) -> Result<Self, EmailSetupError> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| EmailSetupError::From(from.to_owned(), e))?;
        let message_id_domain = from.email.domain().to_owned();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)?
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(pool_size))
            .build();
        Ok(Self {
            transport,
            from,
            message_id_domain,
        })
    }

    pub async fn send(&self, delivery: &ClaimedDelivery) -> SendOutcome {
        let message = match self.message(delivery) {
            Ok(message) => message,
            Err(reason) => return SendOutcome::Permanent(reason),
        };
        match self.transport.send(message).await {
            Ok(response) => SendOutcome::Sent {
                provider_id: response.message().next().map(str::to_owned),
            },
            Err(error) if refuses_this_message(&error) => {
                SendOutcome::Permanent(smtp_reason(&error))
            }
            // 4xx, timeouts, refused or dropped connections, and 5xx that
            // are about us rather than the message (530/535 authentication,
            // 500-504 syntax): every email would fail alike, so they wait
            // for the configuration or the server to be fixed.
            Err(error) => SendOutcome::Transient(smtp_reason(&error)),
        }
    }

    fn message(&self, delivery: &ClaimedDelivery) -> Result<Message, String> {
        let to: Mailbox = delivery
            .address
            .parse()
            .map_err(|e| format!("not an email address: {e}"))?;
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(delivery.text_body.clone());
        let body = match &delivery.html_body {
            Some(html) => MultiPart::alternative().singlepart(text).singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html.clone()),
            ),
            None => MultiPart::mixed().singlepart(text),
        };
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(delivery.subject.clone().unwrap_or_default())
            .message_id(Some(format!(
                "<{}@{}>",
                delivery.id, self.message_id_domain
            )))
            .multipart(body)
            .map_err(|e| format!("cannot build the message: {e}"))
    }
}

/// A permanent refusal of this message or recipient (55x: no such mailbox,
/// mailbox full, address not allowed, rejected as spam).
fn refuses_this_message(error: &lettre::transport::smtp::Error) -> bool {
    use lettre::transport::smtp::response::Category;
    error.is_permanent()
        && error
            .status()
            .is_some_and(|code| code.category == Category::MailSystem)
}

fn smtp_reason(error: &lettre::transport::smtp::Error) -> String {
    match error.status() {
        Some(code) => format!("SMTP {code}: {error}"),
        None => format!("SMTP: {error}"),
    }
}
