//! Notifications (Admin): the e-mail outbox (`/admin/notifications`: queued and failed
//! messages, whether an SMTP server is set, "retry now") and each bucket's webhooks
//! (`/admin/buckets/{id}/webhooks`: create, switch off and on, delete, the delivery log).
//! Every handler takes `Admin`; the changes and their audit events live in
//! `crate::app::notifications`. GETs only read. A webhook's secret is shown once, in the
//! answer to the form that created it.

mod outbox;
mod webhooks;

use super::{FormResult, fields};
use crate::app::error::AppError;
use crate::domain::ids::{BucketId, EmailId, WebhookId};
use crate::web::respond::{render, see_other};

crate::route_table! {
    GET "/admin/notifications" => outbox::show,
    POST "/admin/notifications/{id}/retry" => outbox::retry,
    GET "/admin/buckets/{id}/webhooks" => webhooks::show,
    POST "/admin/buckets/{id}/webhooks" => webhooks::create,
    POST "/admin/buckets/{id}/webhooks/{webhook_id}/enable" => webhooks::enable,
    POST "/admin/buckets/{id}/webhooks/{webhook_id}/disable" => webhooks::disable,
    POST "/admin/buckets/{id}/webhooks/{webhook_id}/delete" => webhooks::delete,
}

/// Ids from the URL: anything but a canonical id is simply not found.
fn bucket_id(raw: &str) -> Result<BucketId, AppError> {
    BucketId::parse(raw).ok_or(AppError::NotFound)
}

fn webhook_id(raw: &str) -> Result<WebhookId, AppError> {
    WebhookId::parse(raw).ok_or(AppError::NotFound)
}

fn email_id(raw: &str) -> Result<EmailId, AppError> {
    EmailId::parse(raw).ok_or(AppError::NotFound)
}
