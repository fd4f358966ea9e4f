//! Webhooks: an admin points a bucket's events at a URL; each event is queued, in the
//! transaction that records it, as one delivery per subscribed webhook, and the worker
//! POSTs it signed (`deliver`).
//!
//! The signing secret is made here (256 random bits), shown to the admin once, and stored
//! sealed with the master key, bound to its row and field like a bucket's S3 secret key.

mod deliver;

use chrono::NaiveDateTime;
use data_encoding::HEXLOWER;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

pub use self::deliver::{DeliveryReport, send_due, signature};
use crate::app::accounts::ActingAdmin;
use crate::app::audit::{self, Event, Outcome};
use crate::app::error::AppError;
use crate::app::uploads::Upload;
use crate::domain::ids::{BatchId, BucketId, DeliveryId, WebhookId};
pub use crate::domain::webhook::{WebhookEvent, WebhookEvents, WebhookUrl};
use crate::infra::crypto::secrets::{self, Keyring, SealContext};
use crate::infra::db::repo::{webhook_deliveries as deliveries, webhooks as repo};
use crate::infra::db::{DbConnection, write_tx};

pub(super) const PENDING: &str = "pending";
pub(super) const DELIVERED: &str = "delivered";
pub(super) const FAILED: &str = "failed";

/// Where a webhook's secret is sealed: its row and field.
pub fn seal_context(id: &str) -> SealContext<'_> {
    SealContext {
        table: "webhooks",
        row_id: id,
        field: "secret",
    }
}

/// Queues `event` for every enabled webhook of `bucket` that takes it, inside the caller's
/// write transaction. `data` must hold ids and figures only, never file names or patient
/// data. One indexed read when the bucket has no webhook; nothing is sent here, so a
/// target that is down never holds up or fails the caller.
pub fn queue(
    conn: &mut DbConnection,
    bucket: &BucketId,
    event: WebhookEvent,
    data: Value,
) -> Result<(), AppError> {
    let hooks = repo::enabled_of_bucket(conn, bucket.as_str())?;
    let now = chrono::Utc::now();
    for (webhook_id, events) in hooks {
        if !WebhookEvents::from_db(&events).contains(event) {
            continue;
        }
        let id = DeliveryId::new();
        let body = json!({
            "id": id.as_str(),
            "type": event.as_str(),
            "created_at": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "data": data,
        })
        .to_string();
        deliveries::insert(
            conn,
            &deliveries::NewRow {
                id: id.as_str(),
                webhook_id: &webhook_id,
                event: event.as_str(),
                payload: &body,
                state: PENDING,
                next_attempt_at: now.naive_utc(),
                created_at: now.naive_utc(),
            },
        )?;
    }
    Ok(())
}

/// An event ready to queue inside the transaction that records it: the bucket it belongs
/// to, what happened, and its data.
#[derive(Debug, Clone)]
pub struct BucketEvent {
    pub bucket: BucketId,
    pub event: WebhookEvent,
    pub data: Value,
}

impl BucketEvent {
    pub fn queue(&self, conn: &mut DbConnection) -> Result<(), AppError> {
        queue(conn, &self.bucket, self.event, self.data.clone())
    }
}

/// An upload's event. Its data names the upload, its bucket and batch, its size, SHA-256,
/// state and scan result (`off` without a scanner): never the file name, which may itself
/// be patient data.
pub fn upload_event(
    upload: &Upload,
    event: WebhookEvent,
    sha256: Option<&str>,
    scan: &str,
) -> BucketEvent {
    let status = match event {
        WebhookEvent::UploadQuarantined => "quarantined",
        _ => "completed",
    };
    BucketEvent {
        bucket: upload.bucket_id.clone(),
        event,
        data: json!({
            "upload_id": upload.id.as_str(),
            "bucket_id": upload.bucket_id.as_str(),
            "batch_id": upload.batch_id.as_ref().map(|b| b.as_str()),
            "size": upload.declared_size,
            "sha256": sha256.or(upload.sha256.as_deref()),
            "status": status,
            "scan": scan,
        }),
    }
}

/// A finished batch's event: its id, bucket and the counts its audit event holds.
pub fn batch_event(batch: &BatchId, bucket: &BucketId, counts: &Value) -> BucketEvent {
    let mut data = json!({ "batch_id": batch.as_str(), "bucket_id": bucket.as_str() });
    if let (Some(data), Some(counts)) = (data.as_object_mut(), counts.as_object()) {
        data.extend(counts.clone());
    }
    BucketEvent {
        bucket: bucket.clone(),
        event: WebhookEvent::BatchCompleted,
        data,
    }
}

/// A webhook as the admin page shows it (never its secret).
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: WebhookId,
    pub url: String,
    pub events: WebhookEvents,
    pub enabled: bool,
    pub created_at: NaiveDateTime,
}

/// One line of the delivery log.
pub use deliveries::Listed as DeliveryRow;

/// A bucket's webhooks and its latest deliveries.
pub fn of_bucket(
    conn: &mut DbConnection,
    bucket: &BucketId,
    log_size: i64,
) -> Result<(Vec<Webhook>, Vec<DeliveryRow>), AppError> {
    let hooks = repo::of_bucket(conn, bucket.as_str())?
        .into_iter()
        .map(|row| Webhook {
            id: WebhookId::from_db(row.id),
            url: row.url,
            events: WebhookEvents::from_db(&row.events),
            enabled: row.enabled,
            created_at: row.created_at,
        })
        .collect();
    let log = deliveries::latest_of_bucket(conn, bucket.as_str(), log_size)?;
    Ok((hooks, log))
}

/// A new webhook, and its secret: shown to the admin once, never again.
pub struct Created {
    pub id: WebhookId,
    pub secret: SecretString,
}

/// A new signing secret: `whsec_` and 256 random bits in hex. The whole string is the key.
fn new_secret() -> Result<SecretString, AppError> {
    let bytes = crate::infra::crypto::random_bytes::<32>().map_err(AppError::internal)?;
    Ok(SecretString::from(format!(
        "whsec_{}",
        HEXLOWER.encode(&bytes)
    )))
}

/// What an admin asks for.
pub struct NewWebhook {
    pub bucket: BucketId,
    pub url: WebhookUrl,
    pub events: WebhookEvents,
}

/// Creates a webhook (audited). `NotFound` when the bucket does not exist.
pub fn create(
    conn: &mut DbConnection,
    keyring: &Keyring,
    admin: &ActingAdmin,
    new: &NewWebhook,
    now: NaiveDateTime,
) -> Result<Created, AppError> {
    let id = WebhookId::new();
    let secret = new_secret()?;
    let sealed = secrets::seal(
        keyring,
        &seal_context(id.as_str()),
        secret.expose_secret().as_bytes(),
    )
    .map_err(AppError::internal)?;
    write_tx(conn, |conn| {
        if crate::infra::db::repo::buckets::find(conn, new.bucket.as_str())?.is_none() {
            return Err(AppError::NotFound);
        }
        repo::insert(
            conn,
            &repo::Row {
                id: id.as_str().to_string(),
                bucket_id: new.bucket.as_str().to_string(),
                url: new.url.as_str().to_string(),
                secret_sealed: sealed,
                events: new.events.to_db(),
                enabled: true,
                created_by: Some(admin.id.as_str().to_string()),
                created_at: now,
                updated_at: now,
            },
        )?;
        audit::record(
            conn,
            &Event::new(admin.actor.clone(), "webhook.create", Outcome::Success)
                .origin(admin.origin.clone())
                .target("webhook", id.as_str())
                .details(json!({
                    "bucket": new.bucket.as_str(),
                    // The host only: a path or query may hold the receiver's own token.
                    "host": new.url.host(),
                    "events": new.events.to_db(),
                })),
        )?;
        Ok(())
    })?;
    Ok(Created { id, secret })
}

/// A change to an existing webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Enable,
    Disable,
    Delete,
}

impl Change {
    fn action(self) -> &'static str {
        match self {
            Self::Enable => "webhook.enable",
            Self::Disable => "webhook.disable",
            Self::Delete => "webhook.delete",
        }
    }
}

/// Applies `change` to webhook `id` of `bucket` (audited). `NotFound` when there is none.
pub fn change(
    conn: &mut DbConnection,
    admin: &ActingAdmin,
    bucket: &BucketId,
    id: &WebhookId,
    change: Change,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    write_tx(conn, |conn| {
        let done = match change {
            Change::Enable => repo::set_enabled(conn, id.as_str(), bucket.as_str(), true, now)?,
            Change::Disable => repo::set_enabled(conn, id.as_str(), bucket.as_str(), false, now)?,
            Change::Delete => repo::delete(conn, id.as_str(), bucket.as_str())?,
        };
        if !done {
            return Err(AppError::NotFound);
        }
        audit::record(
            conn,
            &Event::new(admin.actor.clone(), change.action(), Outcome::Success)
                .origin(admin.origin.clone())
                .target("webhook", id.as_str())
                .details(json!({ "bucket": bucket.as_str() })),
        )?;
        Ok(())
    })
}
