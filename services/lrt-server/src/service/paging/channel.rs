//! Delivery channels of a page.
//!
//! **Webhook**: `POST {url}` with the payload as JSON and
//! * `Idempotency-Key: <page id>`: the same on every attempt and every replica, so the receiver
//!   keeps one page per key (delivery is at least once);
//! * `X-LRT-Timestamp: <unix seconds>` and
//!   `X-LRT-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: the receiver
//!   recomputes it with the shared secret and refuses old timestamps (replay);
//! * a per-request timeout. Any 2xx is delivered; anything else (or no answer) is retried.
//!
//! **FHIR**: `PUT {base}/CommunicationRequest/{page id}` (update-as-create: writing it twice
//! leaves one resource), `status` active, `priority` from the urgency (routine, urgent, stat),
//! `subject` the patient, `encounter` when known, the reason as `reasonCode` text and the link to
//! the evaluation as `payload.contentString`. No clinical narrative beyond that.

use std::time::Duration;

use hmac::{Hmac, Mac};
use lrt_fhir::{ClientConfig, FhirClient};
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Channel, FhirChannelConfig, PagingConfig, WebhookConfig};
use crate::service::state::read_secret;

/// Why a channel could not be set up (at start).
#[derive(Debug, thiserror::Error)]
pub enum ChannelSetupError {
    #[error("paging.webhook: no HMAC secret: set {0} or secret_file")]
    NoSecret(String),
    #[error("paging: {0}")]
    Secret(String),
    #[error("paging.fhir.base: {0}")]
    Fhir(String),
    #[error("paging.webhook: {0}")]
    Http(String),
}

/// Why one delivery attempt failed (the message is stored: no payload, no secret in it).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("HTTP {status}")]
    Status { status: u16 },
    #[error("no answer within {0} ms")]
    Timeout(u64),
    #[error("connection failed: {0}")]
    Connection(String),
    #[error("{0}")]
    Fhir(String),
    #[error("channel {0} is not configured in this process")]
    NotConfigured(String),
}

impl DeliveryError {
    pub fn http_status(&self) -> Option<u16> {
        match self {
            DeliveryError::Status { status } => Some(*status),
            _ => None,
        }
    }
}

struct Webhook {
    http: reqwest::Client,
    url: String,
    secret: SecretSlice<u8>,
    timeout_ms: u64,
}

struct FhirChannel {
    client: FhirClient,
    recipient: Option<String>,
}

/// The configured channels, ready to deliver.
pub struct Channels {
    webhook: Option<Webhook>,
    fhir: Option<FhirChannel>,
}

impl Channels {
    pub fn new(config: &PagingConfig) -> Result<Channels, ChannelSetupError> {
        let webhook = config.webhook.as_ref().map(webhook).transpose()?;
        let fhir = config.fhir.as_ref().map(fhir).transpose()?;
        Ok(Channels { webhook, fhir })
    }

    /// The configured channels' names (`webhook`, `fhir`).
    pub fn names(&self) -> Vec<&'static str> {
        [
            self.webhook.as_ref().map(|_| "webhook"),
            self.fhir.as_ref().map(|_| "fhir"),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Delivers `payload` on `channel`; Ok(HTTP status) on success.
    pub async fn deliver(&self, channel: Channel, payload: &Value) -> Result<u16, DeliveryError> {
        match channel {
            Channel::Webhook => match &self.webhook {
                Some(w) => w.deliver(payload).await,
                None => Err(DeliveryError::NotConfigured("webhook".into())),
            },
            Channel::Fhir => match &self.fhir {
                Some(f) => f.deliver(payload).await,
                None => Err(DeliveryError::NotConfigured("fhir".into())),
            },
        }
    }
}

fn webhook(c: &WebhookConfig) -> Result<Webhook, ChannelSetupError> {
    let env = c
        .secret_env
        .as_deref()
        .unwrap_or("LRT_PAGER_WEBHOOK_SECRET");
    let secret = read_secret(
        c.secret_file.as_deref(),
        c.secret_env.as_deref(),
        "LRT_PAGER_WEBHOOK_SECRET",
    )
    .map_err(ChannelSetupError::Secret)?
    .ok_or_else(|| ChannelSetupError::NoSecret(env.to_string()))?;
    lrt_fhir::client::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(c.timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ChannelSetupError::Http(e.to_string()))?;
    Ok(Webhook {
        http,
        url: c.url.clone(),
        secret: SecretSlice::from(secret.expose_secret().as_bytes().to_vec()),
        timeout_ms: c.timeout_ms,
    })
}

fn fhir(c: &FhirChannelConfig) -> Result<FhirChannel, ChannelSetupError> {
    let token = read_secret(
        c.token_file.as_deref(),
        c.token_env.as_deref(),
        "LRT_PAGER_FHIR_TOKEN",
    )
    .map_err(ChannelSetupError::Secret)?;
    let client = FhirClient::new(
        &c.base,
        token,
        ClientConfig {
            timeout: Duration::from_millis(c.timeout_ms),
            // The dispatcher retries with its own backoff and horizon.
            retries: 0,
            backoff: Duration::from_millis(100),
            max_pages: 1,
            max_resources: ClientConfig::default().max_resources,
        },
    )
    .map_err(|e| ChannelSetupError::Fhir(e.to_string()))?;
    Ok(FhirChannel {
        client,
        recipient: c.recipient.clone(),
    })
}

/// HMAC-SHA256(secret, "<timestamp>.<body>").
fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>").
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let bytes = mac(secret, timestamp, body).finalize().into_bytes();
    let mut hex = String::with_capacity(7 + bytes.len() * 2);
    hex.push_str("sha256=");
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Whether `header` is the signature of `body` at `timestamp` (constant-time comparison).
pub fn verify_signature(secret: &[u8], timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(bytes) = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&bytes).is_ok()
}

impl Webhook {
    async fn deliver(&self, payload: &Value) -> Result<u16, DeliveryError> {
        let body =
            serde_json::to_vec(payload).map_err(|e| DeliveryError::Connection(e.to_string()))?;
        let timestamp = chrono::Utc::now().timestamp();
        let key = payload["idempotency_key"].as_str().unwrap_or_default();
        let mut trace = reqwest::header::HeaderMap::new();
        crate::service::telemetry::inject_trace_context(&mut trace);
        let response = self
            .http
            .post(&self.url)
            .headers(trace)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", key)
            .header("X-LRT-Timestamp", timestamp.to_string())
            .header(
                "X-LRT-Signature",
                signature(self.secret.expose_secret(), timestamp, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    DeliveryError::Timeout(self.timeout_ms)
                } else {
                    DeliveryError::Connection(transport_message(&e))
                }
            })?;
        let status = response.status();
        // Drain the body so the connection can be reused; its content is not kept.
        let _ = response.bytes().await;
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(DeliveryError::Status {
                status: status.as_u16(),
            })
        }
    }
}

/// A transport error with its causes, without the URL's query (none is used) or any header.
fn transport_message(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The `CommunicationRequest` of a page.
pub fn communication_request(payload: &Value, recipient: Option<&str>) -> Value {
    let priority = match payload["urgency"].as_str() {
        Some("emergent") => "stat",
        Some("urgent") => "urgent",
        _ => "routine",
    };
    let id = payload["page_id"].as_str().unwrap_or_default();
    let mut cr = json!({
        "resourceType": "CommunicationRequest",
        "id": id,
        "identifier": [{"system": "urn:lrt-cds:consult-page", "value": id}],
        "status": "active",
        "intent": "order",
        "category": [{"text": "Lung Rescue Team consult"}],
        "priority": priority,
        "authoredOn": payload["created_at"],
        "reasonCode": [{
            "coding": [{"system": "urn:lrt-cds:consult-trigger",
                        "code": payload["reason"]["code"],
                        "display": payload["reason"]["display"]}],
            "text": payload["reason"]["display"]
        }],
    });
    if let Some(patient) = payload["patient"]["reference"].as_str() {
        cr["subject"] = json!({"reference": patient});
    }
    if let Some(e) = payload["encounter"]["reference"].as_str() {
        cr["encounter"] = json!({"reference": e});
    }
    if let Some(r) = recipient {
        cr["recipient"] = json!([{"reference": r}]);
    }
    if let Some(url) = payload["evaluation"]["url"].as_str() {
        cr["payload"] = json!([{"contentString": format!("LRT evaluation: {url}")}]);
    }
    cr
}

impl FhirChannel {
    async fn deliver(&self, payload: &Value) -> Result<u16, DeliveryError> {
        let resource = communication_request(payload, self.recipient.as_deref());
        let id = payload["page_id"].as_str().unwrap_or_default();
        self.client
            .put("CommunicationRequest", id, &resource.to_string())
            .await
            .map(|()| 200)
            .map_err(|e| match e {
                lrt_fhir::FhirError::Status { status, .. } => DeliveryError::Status { status },
                lrt_fhir::FhirError::Timeout { timeout_ms, .. } => {
                    DeliveryError::Timeout(timeout_ms)
                }
                other => DeliveryError::Fhir(other.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_detect_changes() {
        let s = signature(b"k", 1_700_000_000, b"{\"a\":1}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64);
        assert!(verify_signature(b"k", 1_700_000_000, b"{\"a\":1}", &s));
        assert!(!verify_signature(b"k", 1_700_000_001, b"{\"a\":1}", &s));
        assert!(!verify_signature(b"k", 1_700_000_000, b"{\"a\":2}", &s));
        assert!(!verify_signature(b"other", 1_700_000_000, b"{\"a\":1}", &s));
        assert!(!verify_signature(
            b"k",
            1_700_000_000,
            b"{\"a\":1}",
            "sha256=zz"
        ));
    }

    #[test]
    fn a_communication_request_carries_the_minimum() {
        let payload = json!({"page_id": "p1", "urgency": "emergent", "created_at": "2026-12-01T00:00:00Z",
            "reason": {"code": "ECMO_ELIGIBLE", "display": "d"},
            "patient": {"reference": "Patient/x"}, "evaluation": {"url": "https://lrt/api/v1/evaluations/e"}});
        let cr = communication_request(&payload, Some("Group/lrt"));
        assert_eq!(cr["priority"], "stat");
        assert_eq!(cr["subject"]["reference"], "Patient/x");
        assert_eq!(cr["recipient"][0]["reference"], "Group/lrt");
        assert!(cr.get("encounter").is_none());
        assert_eq!(cr["id"], "p1");
    }
}
