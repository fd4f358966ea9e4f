//! The webhook worker's pass: claims due deliveries, POSTs each one signed, and records the
//! attempt in the delivery log. Only the outcome of a delivery is audited
//! (`webhook.delivered`, or `webhook.failed` once attempts stop), never each retry, so a
//! dead target cannot flood the audit trail.
//!
//! The signature is Stripe's scheme: `Medport-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256(secret, "<t>.<body>")>`. The timestamp lets a receiver refuse replays.

use ring::hmac;
use secrecy::ExposeSecret;
use serde_json::json;

use super::{DELIVERED, FAILED, PENDING};
use crate::app::audit::{self, Actor, Event, Outcome};
use crate::app::error::AppError;
use crate::app::notifications::Notifier;
use crate::app::notifications::email::later;
use crate::app::notifications::retry::Next;
use crate::infra::crypto::secrets;
use crate::infra::db::repo::webhook_deliveries::{self as repo, Attempt, Claimed};
use crate::infra::db::write_tx;

/// Deliveries claimed at a time by one worker; sent side by side, so one slow target
/// does not hold up the others for more than one deadline.
const BATCH: i64 = 20;

/// The `Medport-Signature` value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={timestamp},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: u32,
    pub retrying: u32,
    pub failed: u32,
}

/// Delivers what is due, one batch.
pub async fn send_due(n: &Notifier) -> Result<DeliveryReport, AppError> {
    let (token, now) = (
        crate::app::notifications::claim_token()?,
        n.clock.now_naive(),
    );
    let owner = token.clone();
    let claimed =
        n.db.run(move |conn| {
            if !repo::any_due(conn, PENDING, now)? {
                return Ok(Vec::new());
            }
            write_tx(conn, |conn| {
                let ids = repo::claim_due(
                    conn,
                    PENDING,
                    now,
                    BATCH,
                    &owner,
                    now + crate::app::notifications::LEASE,
                )?;
                Ok::<_, AppError>(repo::claimed(conn, &ids, &owner)?)
            })
        })
        .await?;
    let attempts = claimed.into_iter().map(|d| async {
        let tried = attempt(n, &d).await;
        record(n, d, &token, tried).await
    });
    let mut report = DeliveryReport::default();
    for outcome in futures_util::future::join_all(attempts).await {
        match outcome? {
            Some(DELIVERED) => report.delivered += 1,
            Some(FAILED) => report.failed += 1,
            Some(_) => report.retrying += 1,
            None => {}
        }
    }
    Ok(report)
}

/// How one attempt went.
struct Tried {
    status: Option<u16>,
    /// Why it did not count as delivered; `None` for a 2xx answer.
    error: Option<String>,
    /// Not worth trying again (the webhook was switched off, its secret cannot be opened).
    permanent: bool,
}

impl Tried {
    fn refused(error: &str) -> Self {
        Self {
            status: None,
            error: Some(error.to_string()),
            permanent: true,
        }
    }
}

async fn attempt(n: &Notifier, d: &Claimed) -> Tried {
    if !d.enabled {
        return Tried::refused("the webhook was switched off before delivery");
    }
    let Ok(secret) = secrets::open(
        &n.keyring,
        &super::seal_context(&d.webhook_id),
        &d.secret_sealed,
    ) else {
        return Tried::refused("the signing secret could not be opened");
    };
    let body = d.payload.as_bytes().to_vec();
    let signed = signature(secret.expose_secret(), n.clock.now().timestamp(), &body);
    let request = http::Request::post(d.url.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("medport-webhooks/", env!("CARGO_PKG_VERSION")),
        )
        .header("Medport-Delivery", d.id.as_str())
        .header("Medport-Event", d.event.as_str())
        .header("Medport-Signature", signed)
        .body(body);
    let request = match request {
        Ok(r) => r,
        Err(_) => return Tried::refused("the stored URL is not usable"),
    };
    let http = match &n.http {
        Ok(http) => http,
        Err(why) => {
            return Tried {
                status: None,
                error: Some(why.clone()),
                permanent: false,
            };
        }
    };
    match http.send(request).await {
        Ok(answer) if answer.status().is_success() => Tried {
            status: Some(answer.status().as_u16()),
            error: None,
            permanent: false,
        },
        Ok(answer) => {
            let status = answer.status();
            let error = if status.is_redirection() {
                format!("answered {} (a redirect; never followed)", status.as_u16())
            } else {
                format!("answered {}", status.as_u16())
            };
            Tried {
                status: Some(status.as_u16()),
                error: Some(error),
                permanent: false,
            }
        }
        Err(e) => Tried {
            status: None,
            error: Some(e.0.chars().take(200).collect()),
            permanent: false,
        },
    }
}

/// Writes the attempt into the delivery log (and the audit trail when final); the state
/// written, or `None` when the claim was lost meanwhile.
async fn record(
    n: &Notifier,
    d: Claimed,
    token: &str,
    tried: Tried,
) -> Result<Option<&'static str>, AppError> {
    let now = n.clock.now_naive();
    let attempts = d.attempts.saturating_add(1);
    let (state, next_at) = match (&tried.error, tried.permanent) {
        (None, _) => (DELIVERED, now),
        (Some(_), true) => (FAILED, now),
        (Some(_), false) => match n.schedule.after_failure(attempts) {
            Next::RetryAfter(wait) => (PENDING, later(now, wait)),
            Next::GiveUp => (FAILED, now),
        },
    };
    if let Some(error) = &tried.error {
        tracing::warn!(delivery = %d.id, webhook = %d.webhook_id, attempt = attempts, %error,
            state, "webhook not delivered");
    }
    let token = token.to_string();
    n.db.run(move |conn| {
        write_tx(conn, |conn| {
            let written = repo::record(
                conn,
                &d.id,
                &token,
                &Attempt {
                    state,
                    attempts,
                    next_at,
                    status: tried.status.map(i32::from),
                    error: tried.error.as_deref(),
                    delivered_at: (state == DELIVERED).then_some(now),
                },
            )?;
            if !written {
                return Ok(None);
            }
            let (action, outcome) = match state {
                DELIVERED => ("webhook.delivered", Outcome::Success),
                FAILED => ("webhook.failed", Outcome::Failure),
                _ => return Ok(Some(state)),
            };
            audit::record(
                conn,
                &Event::new(Actor::system(), action, outcome)
                    .target("webhook_delivery", d.id.as_str())
                    .details(json!({
                        "webhook": d.webhook_id,
                        "bucket": d.bucket_id,
                        "event": d.event,
                        "attempts": attempts,
                        "status": tried.status,
                        "error": tried.error,
                    })),
            )?;
            Ok::<_, AppError>(Some(state))
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_the_timestamp_and_body() {
        // Computed independently (Python: hmac.new(b"whsec_test", b"1700000000.{...}",
        // hashlib.sha256).hexdigest()).
        let body = br#"{"id":"d1","type":"upload.completed"}"#;
        assert_eq!(
            signature(b"whsec_test", 1_700_000_000, body),
            "t=1700000000,v1=a050bc069036924d02f554edb751dc3293ab8f027c720742fa442e9debdeba0b"
        );
        // Another timestamp, another body or another secret, another signature.
        let base = signature(b"whsec_test", 1_700_000_000, body);
        assert_ne!(signature(b"whsec_test", 1_700_000_001, body), base);
        assert_ne!(signature(b"whsec_test", 1_700_000_000, b"{}"), base);
        assert_ne!(signature(b"whsec_other", 1_700_000_000, body), base);
    }
}
