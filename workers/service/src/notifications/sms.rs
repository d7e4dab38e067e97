//! SMS through a provider's HTTP API.
//!
//! The adapter speaks the common shape of Italian/European SMS gateways:
//! `POST <SMS_PROVIDER_URL>` with HTTP basic credentials and a JSON body
//! `{"sender", "recipient", "text", "encoding", "reference"}`; a 2xx answer
//! carries `{"id": "..."}`. `reference` is the delivery's id: the provider
//! drops a second submission with the same reference, so a resend after an
//! interrupted attempt never reaches the phone twice. 408, 429, 5xx, 401, 403 and 404
//! (and timeouts: ours or the gateway's trouble) are retried; any other 4xx is not.

use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::domain::notification::SendOutcome;
use crate::domain::sms::{measure, SmsEncoding};
use crate::store::notifications::ClaimedDelivery;

/// Where and as whom to send.
#[derive(Debug, Clone)]
pub struct SmsProviderConfig {
    pub url: String,
    pub user: String,
    pub password: String,
    /// Alphanumeric sender shown on the phone (at most 11 characters).
    pub sender: String,
    /// Longer texts are refused rather than billed as many parts.
    pub max_parts: usize,
    pub timeout: Duration,
}

/// The request body of the provider API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SmsSubmission {
    pub sender: String,
    pub recipient: String,
    pub text: String,
    pub encoding: SmsEncoding,
    pub reference: String,
}

#[derive(Debug, Deserialize)]
struct Accepted {
    id: Option<String>,
}

pub struct SmsProvider {
    client: reqwest::Client,
    config: SmsProviderConfig,
}

impl SmsProvider {
    pub fn new(config: SmsProviderConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .pool_max_idle_per_host(16)
            .build()?;
        Ok(Self { client, config })
    }

    pub async fn send(&self, delivery: &ClaimedDelivery) -> SendOutcome {
        self.send_text(
            &delivery.address,
            &delivery.text_body,
            &delivery.id.to_string(),
            &delivery.correlation_id,
        )
        .await
    }

    /// Sends `text` to `recipient` (E.164); `reference` identifies it to the
    /// provider, which accepts it once. The video gateway's one-time codes
    /// go this way, outside the delivery queue: they are useless late.
    pub async fn send_text(
        &self,
        recipient: &str,
        text: &str,
        reference: &str,
        correlation_id: &str,
    ) -> SendOutcome {
        let length = measure(text);
        if length.parts > self.config.max_parts {
            return SendOutcome::Permanent(format!(
                "text needs {} parts ({:?}, {} units), more than the {} allowed",
                length.parts, length.encoding, length.units, self.config.max_parts
            ));
        }
        let submission = SmsSubmission {
            sender: self.config.sender.clone(),
            recipient: recipient.to_owned(),
            text: text.to_owned(),
            encoding: length.encoding,
            reference: reference.to_owned(),
        };
        let response = self
            .client
            .post(&self.config.url)
            .basic_auth(&self.config.user, Some(&self.config.password))
            .header("x-correlation-id", correlation_id)
            .json(&submission)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                return SendOutcome::Transient(format!("SMS provider unreachable: {error}"))
            }
        };
        let status = response.status();
        if status.is_success() {
            let id = response.json::<Accepted>().await.ok().and_then(|a| a.id);
            return SendOutcome::Sent { provider_id: id };
        }
        let body = response.text().await.unwrap_or_default();
        let reason = format!(
            "SMS provider {status}: {}",
            body.chars().take(300).collect::<String>()
        );
        // 401/403/404: our credentials or URL, not this message; every SMS
        // would fail alike, so they wait for the configuration to be fixed.
        let ours = [
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND,
        ];
        // 408: the gateway gave up waiting for our request, not on this message.
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
            || ours.contains(&status)
        {
            SendOutcome::Transient(reason)
        } else {
            SendOutcome::Permanent(reason)
        }
    }
}
