//! The signed-in user's API keys: list, create, revoke, rotate. A new key is shown once, in
//! the response to the request that made it; it is never stored in the session or shown
//! again.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::NaiveDateTime;

use crate::app::accounts::api_keys::{
    self, ApiKeyRow, ExpiryDays, IssuedKey, KeyName, KeyRequest, KeyStatus, Revoked, Rotated,
};
use crate::app::error::AppError;
use crate::domain::FieldError;
use crate::domain::api_key::{Scope, Scopes};
use crate::domain::clock::Clock;
use crate::domain::ids::ApiKeyId;
use crate::infra::db::Database;
use crate::web::extractors::CurrentUser;
use crate::web::respond::{render, see_other};
use crate::web::session;
use crate::web::timestamp::Timestamp;
use crate::web::views::Layout;

crate::route_table! {
    GET "/account/api-keys" => list,
    POST "/account/api-keys" => create,
    POST "/account/api-keys/{id}/revoke" => revoke,
    POST "/account/api-keys/{id}/rotate" => rotate,
}

const PAGE_PATH: &str = "/account/api-keys";

/// How a key's prefix is shown: enough to tell keys apart, clearly not the whole key.
fn shown_prefix(prefix: &str) -> String {
    format!("mp_{prefix}_…")
}

/// One row of the key list, ready to show.
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created: Timestamp,
    pub expires: Option<Timestamp>,
    pub last_used: Option<Timestamp>,
    pub status: &'static str,
    pub badge: &'static str,
    pub active: bool,
}

impl KeyView {
    fn new(row: &ApiKeyRow, now: NaiveDateTime) -> Self {
        let status = row.status(now);
        let (label, badge) = match status {
            KeyStatus::Active => ("Active", "badge-ok"),
            KeyStatus::Expired => ("Expired", "badge-warn"),
            KeyStatus::Revoked => ("Revoked", "badge-muted"),
        };
        Self {
            id: row.id.clone(),
            name: row.name.clone(),
            prefix: shown_prefix(&row.prefix),
            scopes: scope_list(row.scope_set()),
            created: Timestamp::minutes(row.created_at),
            expires: row.expires_at.map(Timestamp::minutes),
            last_used: row.last_used_at.map(Timestamp::minutes),
            status: label,
            badge,
            // An expired key can still be rotated into a fresh one, or revoked for the record.
            active: status != KeyStatus::Revoked,
        }
    }
}

fn scope_list(scopes: Scopes) -> String {
    scopes
        .iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The create form as typed, with its field messages.
#[derive(Debug, Clone)]
pub struct CreateForm {
    pub name: String,
    pub upload: bool,
    pub read: bool,
    pub expires_days: String,
    pub errors: Vec<FieldError>,
    /// Every submitted scope name, comma-joined, so unknown names are refused rather than
    /// silently dropped.
    scopes_raw: String,
}

impl Default for CreateForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            // Most keys are for upload scripts; reading is opted into.
            upload: true,
            read: false,
            expires_days: "90".into(),
            errors: Vec::new(),
            scopes_raw: String::new(),
        }
    }
}

impl CreateForm {
    /// From the submitted pairs; repeated `scopes` fields come from the checkboxes.
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = Self {
            name: String::new(),
            upload: false,
            read: false,
            expires_days: String::new(),
            errors: Vec::new(),
            scopes_raw: String::new(),
        };
        let mut scopes = Vec::new();
        for (key, value) in pairs {
            match key.as_str() {
                "name" => form.name = value.chars().take(256).collect(),
                "expires_days" => form.expires_days = value.chars().take(16).collect(),
                "scopes" => scopes.push(value),
                _ => {}
            }
        }
        form.upload = scopes.iter().any(|s| s == Scope::Upload.as_str());
        form.read = scopes.iter().any(|s| s == Scope::Read.as_str());
        form.scopes_raw = scopes.join(",");
        form
    }

    fn parse(&mut self) -> Option<KeyRequest> {
        let name = KeyName::parse(&self.name)
            .map_err(|e| self.errors.push(e))
            .ok();
        let expires_in = ExpiryDays::parse_optional(&self.expires_days)
            .map_err(|e| self.errors.push(e))
            .ok();
        let scopes = Scopes::parse_list(&self.scopes_raw)
            .map_err(|e| self.errors.push(e))
            .ok();
        match (name, scopes, expires_in) {
            (Some(name), Some(scopes), Some(expires_in)) if self.errors.is_empty() => {
                Some(KeyRequest {
                    name,
                    scopes,
                    expires_in,
                })
            }
            _ => None,
        }
    }

    pub fn error(&self, field: &str) -> Option<&str> {
        FieldError::message_for(&self.errors, field)
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "api_keys.html")]
pub struct ApiKeysPage {
    pub layout: Layout,
    pub keys: Vec<KeyView>,
    pub form: CreateForm,
}

#[derive(Template, WebTemplate)]
#[template(path = "api_keys_created.html")]
pub struct ApiKeyCreatedPage<'a> {
    pub layout: Layout,
    pub heading: &'static str,
    /// The whole key, shown this once.
    pub key: &'a str,
    pub name: &'a str,
    pub prefix: String,
    pub scopes: String,
    pub expires: String,
    /// For a rotation: the prefix of the key it replaced.
    pub replaced: Option<String>,
}

impl<'a> ApiKeyCreatedPage<'a> {
    fn new(
        user: &CurrentUser,
        heading: &'static str,
        key: &'a IssuedKey,
        replaced: Option<String>,
    ) -> Self {
        Self {
            layout: Layout::for_user(user, PAGE_PATH),
            heading,
            key: key.secret.expose(),
            name: &key.name,
            prefix: shown_prefix(key.secret.prefix()),
            scopes: scope_list(key.scopes),
            expires: key
                .expires_at
                .map_or_else(|| "Never".into(), |at| Timestamp::minutes(at).to_string()),
            replaced,
        }
    }
}

async fn keys_page(
    user: &CurrentUser,
    db: &Database,
    clock: &Clock,
    form: CreateForm,
) -> Result<ApiKeysPage, AppError> {
    let owner = user.id.clone();
    let rows = db
        .run(move |conn| api_keys::list_for_user(conn, &owner))
        .await?;
    let now = clock.now_naive();
    Ok(ApiKeysPage {
        layout: Layout::for_user(user, PAGE_PATH),
        keys: rows.iter().map(|row| KeyView::new(row, now)).collect(),
        form,
    })
}

fn key_id(raw: &str) -> Result<ApiKeyId, AppError> {
    ApiKeyId::parse(raw).ok_or(AppError::NotFound)
}

pub async fn list(
    user: CurrentUser,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let page = keys_page(&user, &db, &clock, CreateForm::default()).await?;
    render(StatusCode::OK, &page)
}

pub async fn create(
    user: CurrentUser,
    form: web::Form<Vec<(String, String)>>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let mut form = CreateForm::from_pairs(form.into_inner());
    let Some(request) = form.parse() else {
        let page = keys_page(&user, &db, &clock, form).await?;
        return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    let owner = user.id.clone();
    let now = clock.now_naive();
    let by = user.changed_by();
    let key = db
        .run(move |conn| api_keys::create(conn, &owner, &request, now, &by))
        .await?;
    render(
        StatusCode::OK,
        &ApiKeyCreatedPage::new(&user, "Your new API key", &key, None),
    )
}

pub async fn revoke(
    user: CurrentUser,
    id: web::Path<String>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = key_id(&id)?;
    let owner = user.id.clone();
    let now = clock.now_naive();
    let by = user.changed_by();
    let outcome = db
        .run(move |conn| api_keys::revoke(conn, &owner, &id, now, &by))
        .await?;
    let (kind, message) = match outcome {
        Revoked::Now(row) => (
            "success",
            format!(
                "The key \u{201c}{}\u{201d} ({}) is revoked. Scripts using it are now refused.",
                row.name,
                shown_prefix(&row.prefix)
            ),
        ),
        Revoked::Already(row) => (
            "info",
            format!(
                "The key \u{201c}{}\u{201d} ({}) was already revoked.",
                row.name,
                shown_prefix(&row.prefix)
            ),
        ),
    };
    session::flash(&user.session, kind, message);
    Ok(see_other(PAGE_PATH))
}

pub async fn rotate(
    user: CurrentUser,
    id: web::Path<String>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = key_id(&id)?;
    let owner = user.id.clone();
    let now = clock.now_naive();
    let by = user.changed_by();
    let outcome = db
        .run(move |conn| api_keys::rotate(conn, &owner, &id, now, &by))
        .await?;
    match outcome {
        Rotated::Now { old, new } => render(
            StatusCode::OK,
            &ApiKeyCreatedPage::new(
                &user,
                "Your rotated API key",
                &new,
                Some(shown_prefix(&old.prefix)),
            ),
        ),
        Rotated::AlreadyRevoked(row) => {
            session::flash(
                &user.session,
                "info",
                format!(
                    "The key \u{201c}{}\u{201d} ({}) is revoked and cannot be rotated. Create a new key instead.",
                    row.name,
                    shown_prefix(&row.prefix)
                ),
            );
            Ok(see_other(PAGE_PATH))
        }
    }
}
