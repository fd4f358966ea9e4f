//! A bucket's webhooks: the list, the form that adds one (the URL checked with the bucket
//! endpoint address rules, its name resolved), switching off, on and deleting, and the
//! delivery log.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use secrecy::ExposeSecret;

use super::{FormResult, bucket_id, fields, render, see_other, webhook_id};
use crate::app::buckets::queries;
use crate::app::error::AppError;
use crate::app::notifications::webhooks::{
    self, Change, DeliveryRow, NewWebhook, Webhook, WebhookEvent, WebhookEvents, WebhookUrl,
};
use crate::config::Settings;
use crate::domain::bucket::EndpointPolicy;
use crate::domain::clock::Clock;
use crate::domain::ids::BucketId;
use crate::infra::crypto::secrets::Keyring;
use crate::infra::db::Database;
use crate::web::extractors::Admin;
use crate::web::session;
use crate::web::timestamp::Timestamp;
use crate::web::views::Layout;

const NAV: &str = "/admin/buckets";
/// Deliveries the log shows, newest first.
const LOG_SIZE: i64 = 50;

fn page_path(id: &BucketId) -> String {
    format!("/admin/buckets/{id}/webhooks")
}

pub struct HookRow {
    pub id: String,
    pub url: String,
    pub events: String,
    pub enabled: bool,
    pub created: Timestamp,
}

impl HookRow {
    fn new(hook: &Webhook) -> Self {
        Self {
            id: hook.id.as_str().to_string(),
            url: hook.url.clone(),
            events: hook
                .events
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            enabled: hook.enabled,
            created: Timestamp::minutes(hook.created_at),
        }
    }
}

pub struct LogRow {
    pub id: String,
    pub target: String,
    pub event: String,
    pub state: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created: Timestamp,
    /// Only while another attempt is planned.
    pub next_attempt: Option<Timestamp>,
}

impl LogRow {
    fn new(row: DeliveryRow, urls: &HashMap<String, String>) -> Self {
        Self {
            target: urls.get(&row.webhook_id).cloned().unwrap_or_default(),
            next_attempt: (row.state == "pending").then(|| Timestamp::seconds(row.next_attempt_at)),
            id: row.id,
            event: row.event,
            state: row.state,
            attempts: row.attempts,
            last_status: row.last_status,
            last_error: row.last_error,
            created: Timestamp::seconds(row.created_at),
        }
    }
}

pub struct EventChoice {
    pub value: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

/// What was typed, and the message for each field that was refused.
#[derive(Default)]
pub struct FormState {
    pub url: String,
    pub events: Vec<String>,
    pub url_error: Option<String>,
    pub events_error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_webhooks.html")]
pub struct WebhooksPage {
    pub layout: Layout,
    pub bucket_id: String,
    pub bucket_name: String,
    pub hooks: Vec<HookRow>,
    pub log: Vec<LogRow>,
    pub choices: Vec<EventChoice>,
    pub form: FormState,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_webhook_created.html")]
pub struct CreatedPage<'a> {
    pub layout: Layout,
    pub bucket_id: String,
    pub bucket_name: String,
    pub url: String,
    /// Shown this once.
    pub secret: &'a str,
}

async fn page(
    admin: &Admin,
    db: &Database,
    id: BucketId,
    form: FormState,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let (bucket, (hooks, log)) = db
        .run(move |conn| {
            let bucket = queries::get(conn, &id)?;
            let hooks = webhooks::of_bucket(conn, &id, LOG_SIZE)?;
            Ok::<_, AppError>((bucket, hooks))
        })
        .await?;
    let urls: HashMap<String, String> = hooks
        .iter()
        .map(|h| (h.id.as_str().to_string(), h.url.clone()))
        .collect();
    // A fresh form offers every event; a refused one keeps what was ticked.
    let fresh = form.url.is_empty() && form.events.is_empty() && form.url_error.is_none();
    let choices = WebhookEvent::ALL
        .into_iter()
        .map(|e| EventChoice {
            value: e.as_str(),
            label: e.describe(),
            checked: fresh || form.events.iter().any(|v| v == e.as_str()),
        })
        .collect();
    render(
        status,
        &WebhooksPage {
            layout: Layout::for_user(&admin.0, NAV),
            bucket_id: bucket.id.as_str().to_string(),
            bucket_name: bucket.display_name.clone(),
            hooks: hooks.iter().map(HookRow::new).collect(),
            log: log.into_iter().map(|r| LogRow::new(r, &urls)).collect(),
            choices,
            form,
        },
    )
}

pub async fn show(
    admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
) -> Result<HttpResponse, AppError> {
    let id = bucket_id(&path)?;
    page(&admin, &db, id, FormState::default(), StatusCode::OK).await
}

/// The form checked: the URL by the endpoint rules, then (only once it passes) where its
/// name resolves; at least one known event.
async fn check(
    pairs: Vec<(String, String)>,
    policy: EndpointPolicy,
) -> Result<(WebhookUrl, WebhookEvents), FormState> {
    let mut form = FormState::default();
    for (key, value) in pairs {
        match key.as_str() {
            "url" => form.url = value,
            "events" => form.events.push(value),
            _ => {}
        }
    }
    let url = match WebhookUrl::parse(&form.url, policy) {
        Ok(url) => match url.check_resolved(policy).await {
            Ok(()) => Some(url),
            Err(e) => {
                form.url_error = Some(format!("The URL {}.", e.message));
                None
            }
        },
        Err(e) => {
            form.url_error = Some(format!("The URL {}.", e.message));
            None
        }
    };
    let events = match WebhookEvents::parse(form.events.iter().map(String::as_str)) {
        Ok(events) => Some(events),
        Err(e) => {
            form.events_error = Some(format!("Events: {}.", e.message));
            None
        }
    };
    match (url, events) {
        (Some(url), Some(events)) => Ok((url, events)),
        _ => Err(form),
    }
}

pub async fn create(
    admin: Admin,
    path: web::Path<String>,
    form: FormResult<Vec<(String, String)>>,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
    keyring: web::Data<Keyring>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = bucket_id(&path)?;
    let policy = EndpointPolicy {
        allow_loopback: settings.allow_loopback_endpoints,
    };
    let (url, events) = match check(fields(form)?, policy).await {
        Ok(checked) => checked,
        Err(form) => {
            return page(&admin, &db, id, form, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let shown_url = url.as_str().to_string();
    let new = NewWebhook {
        bucket: id,
        url,
        events,
    };
    let (acting, ring, now) = (
        admin.acting(),
        keyring.clone().into_inner(),
        clock.now_naive(),
    );
    let (created, bucket) = db
        .run(move |conn| {
            let created = webhooks::create(conn, &ring, &acting, &new, now)?;
            let bucket = queries::get(conn, &new.bucket)?;
            Ok::<_, AppError>((created, bucket))
        })
        .await?;
    tracing::info!(webhook = %created.id, bucket = %bucket.id, "webhook created");
    render(
        StatusCode::OK,
        &CreatedPage {
            layout: Layout::for_user(&admin.0, NAV),
            bucket_id: bucket.id.as_str().to_string(),
            bucket_name: bucket.display_name.clone(),
            url: shown_url,
            secret: created.secret.expose_secret(),
        },
    )
}

async fn apply(
    admin: Admin,
    path: web::Path<(String, String)>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
    change: Change,
) -> Result<HttpResponse, AppError> {
    let (raw_bucket, raw_hook) = path.into_inner();
    let (bucket, hook) = (bucket_id(&raw_bucket)?, webhook_id(&raw_hook)?);
    let (acting, now, target) = (admin.acting(), clock.now_naive(), bucket.clone());
    db.run(move |conn| webhooks::change(conn, &acting, &target, &hook, change, now))
        .await?;
    let text = match change {
        Change::Enable => "Webhook switched on: new events are delivered again.",
        Change::Disable => {
            "Webhook switched off: new events are not queued for it, and deliveries still waiting are not sent."
        }
        Change::Delete => "Webhook deleted, with its delivery log.",
    };
    session::flash(&admin.0.session, "success", text);
    Ok(see_other(&page_path(&bucket)))
}

pub async fn enable(
    admin: Admin,
    path: web::Path<(String, String)>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    apply(admin, path, db, clock, Change::Enable).await
}

pub async fn disable(
    admin: Admin,
    path: web::Path<(String, String)>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    apply(admin, path, db, clock, Change::Disable).await
}

pub async fn delete(
    admin: Admin,
    path: web::Path<(String, String)>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    apply(admin, path, db, clock, Change::Delete).await
}
