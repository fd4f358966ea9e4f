//! The owner's pages for upload requests: the list (admins see every request), a new
//! request (its link shown once, in the answer to the form), one request's status with its
//! senders and files, and extend / close / revoke.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::NaiveDateTime;

use crate::app::buckets::{self, size};
use crate::app::error::AppError;
use crate::app::requests::manage::{self, Change, Details, Listed, Manager, NewRequest};
use crate::app::requests::receipt::ReceiptFile;
use crate::app::requests::{LINK_PATH, Status};
use crate::app::uploads::UploadContext;
use crate::domain::FieldError;
use crate::domain::ids::{BucketId, RequestId};
use crate::domain::role::Role;
use crate::domain::upload_request::{
    DEFAULT_EXPIRY_DAYS, ExpiryDays, Instructions, Limits, MAX_EXPIRY_DAYS, Passphrase,
    RequiredFields, SenderField, Title,
};
use crate::web::extractors::CurrentUser;
use crate::web::respond::{render, see_other};
use crate::web::session;
use crate::web::timestamp::Timestamp;
use crate::web::views::Layout;

crate::route_table! {
    GET "/requests" => list,
    GET "/requests/new" => new_form,
    POST "/requests" => create,
    GET "/requests/{id}" => show,
    POST "/requests/{id}/extend" => extend,
    POST "/requests/{id}/close" => end,
    POST "/requests/{id}/revoke" => end,
}

const PAGE_PATH: &str = "/requests";

fn manager(user: &CurrentUser) -> Manager {
    Manager {
        user_id: user.id.clone(),
        email: user.email.clone(),
        role: user.role,
        origin: user.origin(),
    }
}

fn request_id(raw: &str) -> Result<RequestId, AppError> {
    RequestId::parse(raw).ok_or(AppError::NotFound)
}

fn badge(status: Status) -> &'static str {
    match status {
        Status::Open => "badge-ok",
        Status::Expired => "badge-warn",
        Status::Closed | Status::Revoked => "badge-muted",
    }
}

pub struct RequestRow {
    pub id: String,
    pub title: String,
    pub owner: String,
    pub status: &'static str,
    pub badge: &'static str,
    pub files: u64,
    pub max_files: u64,
    pub received: String,
    pub last_activity: Option<Timestamp>,
    pub expires: Timestamp,
}

impl RequestRow {
    fn new(listed: &Listed, now: NaiveDateTime) -> Self {
        let r = &listed.request;
        let status = r.status(now);
        Self {
            id: r.id.to_string(),
            title: r.title.clone(),
            owner: listed.owner_email.clone(),
            status: status.label(),
            badge: badge(status),
            files: listed.usage.files,
            max_files: r.limits.files(),
            received: size::human(listed.usage.bytes),
            last_activity: r.last_activity_at.map(Timestamp::minutes),
            expires: Timestamp::minutes(r.expires_at),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "requests.html")]
pub struct RequestsPage {
    pub layout: Layout,
    pub rows: Vec<RequestRow>,
    pub show_owner: bool,
    pub may_create: bool,
}

pub async fn list(
    user: CurrentUser,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let listed = manage::list(&ctx.db, &manager(&user)).await?;
    let now = ctx.clock.now_naive();
    render(
        StatusCode::OK,
        &RequestsPage {
            layout: Layout::for_user(&user, PAGE_PATH),
            rows: listed.iter().map(|l| RequestRow::new(l, now)).collect(),
            show_owner: user.role == Role::Admin,
            may_create: user.role != Role::Auditor,
        },
    )
}

pub struct BucketChoice {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

pub struct FieldChoice {
    pub name: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

/// The form as typed, with its messages.
pub struct RequestForm {
    pub title: String,
    pub instructions: String,
    pub bucket: String,
    pub expires_days: String,
    pub max_files: String,
    pub max_megabytes: String,
    pub required: Vec<String>,
    pub errors: Vec<FieldError>,
}

impl Default for RequestForm {
    fn default() -> Self {
        Self {
            title: String::new(),
            instructions: String::new(),
            bucket: String::new(),
            expires_days: DEFAULT_EXPIRY_DAYS.to_string(),
            max_files: "1000".into(),
            max_megabytes: "10000".into(),
            required: vec!["name".into(), "email".into()],
            errors: Vec::new(),
        }
    }
}

impl RequestForm {
    pub fn error(&self, field: &str) -> Option<&str> {
        FieldError::message_for(&self.errors, field)
    }

    fn fields(&self) -> Vec<FieldChoice> {
        SenderField::ALL
            .into_iter()
            .map(|f| FieldChoice {
                name: f.as_str(),
                label: f.label(),
                checked: self.required.iter().any(|r| r == f.as_str()),
            })
            .collect()
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "requests_new.html")]
pub struct NewRequestPage {
    pub layout: Layout,
    pub form: RequestForm,
    pub buckets: Vec<BucketChoice>,
    pub fields: Vec<FieldChoice>,
    pub max_days: u32,
}

async fn new_page(
    user: &CurrentUser,
    ctx: &UploadContext,
    form: RequestForm,
) -> Result<NewRequestPage, AppError> {
    if user.role == Role::Auditor {
        return Err(AppError::Forbidden);
    }
    let (id, role) = (user.id.clone(), user.role);
    let visible = ctx
        .db
        .run(move |conn| buckets::visible_to(conn, &id, role))
        .await?;
    let buckets = visible
        .into_iter()
        .map(|b| BucketChoice {
            selected: b.id.as_str() == form.bucket,
            id: b.id.to_string(),
            name: b.display_name,
        })
        .collect();
    Ok(NewRequestPage {
        layout: Layout::for_user(user, PAGE_PATH),
        fields: form.fields(),
        form,
        buckets,
        max_days: MAX_EXPIRY_DAYS,
    })
}

pub async fn new_form(
    user: CurrentUser,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    render(
        StatusCode::OK,
        &new_page(&user, &ctx, RequestForm::default()).await?,
    )
}

/// Field names are kept to what the form has; long values are cut before checking.
fn read_form(pairs: Vec<(String, String)>) -> (RequestForm, String) {
    let mut form = RequestForm {
        required: Vec::new(),
        ..RequestForm::default()
    };
    let mut passphrase = String::new();
    let cut = |v: String, n: usize| v.chars().take(n).collect::<String>();
    for (key, value) in pairs {
        match key.as_str() {
            "title" => form.title = cut(value, 400),
            "instructions" => form.instructions = cut(value, 8000),
            "bucket" => form.bucket = cut(value, 64),
            "expires_days" => form.expires_days = cut(value, 16),
            "max_files" => form.max_files = cut(value, 16),
            "max_megabytes" => form.max_megabytes = cut(value, 16),
            "passphrase" => passphrase = cut(value, 200),
            "required" => form.required.push(cut(value, 64)),
            _ => {}
        }
    }
    (form, passphrase)
}

fn parse(form: &mut RequestForm, passphrase: &str) -> Option<NewRequest> {
    let mut errors = Vec::new();
    let title = Title::parse(&form.title).map_err(|e| errors.push(e)).ok();
    let instructions = Instructions::parse(&form.instructions)
        .map_err(|e| errors.push(e))
        .ok();
    let bucket = BucketId::parse(form.bucket.trim());
    if bucket.is_none() {
        errors.push(FieldError::new("bucket", "choose a bucket"));
    }
    let expires = ExpiryDays::parse(&form.expires_days)
        .map_err(|e| errors.push(e))
        .ok();
    let limits = Limits::parse(&form.max_files, &form.max_megabytes)
        .map_err(|e| errors.extend(e))
        .ok();
    let passphrase = match passphrase {
        "" => Some(None),
        raw => Passphrase::parse(raw)
            .map(Some)
            .map_err(|e| errors.push(e))
            .ok(),
    };
    let required = RequiredFields::parse(form.required.iter().map(String::as_str))
        .map_err(|e| errors.push(e))
        .ok();
    form.errors = errors;
    Some(NewRequest {
        bucket: bucket?,
        title: title?,
        instructions: instructions?,
        expires: expires?,
        limits: limits?,
        passphrase: passphrase?,
        required: required?,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "requests_created.html")]
pub struct CreatedPage<'a> {
    pub layout: Layout,
    pub id: String,
    pub title: &'a str,
    /// The whole link, shown this once.
    pub link: String,
    pub expires: Timestamp,
    pub passphrase: bool,
}

pub async fn create(
    req: HttpRequest,
    user: CurrentUser,
    form: web::Form<Vec<(String, String)>>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let (mut form, passphrase) = read_form(form.into_inner());
    let Some(new) = parse(&mut form, &passphrase) else {
        let page = new_page(&user, &ctx, form).await?;
        return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    let created = match manage::create(
        &ctx.db,
        &ctx.clock,
        ctx.settings.bcrypt_cost,
        &manager(&user),
        new,
    )
    .await
    {
        Err(AppError::NotFound) => {
            form.errors.push(FieldError::new(
                "bucket",
                "choose a bucket you may upload to",
            ));
            let page = new_page(&user, &ctx, form).await?;
            return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
        other => other?,
    };
    let link = format!(
        "{}{LINK_PATH}{}",
        crate::web::client::base_url(&req),
        created.token.expose()
    );
    render(
        StatusCode::OK,
        &CreatedPage {
            layout: Layout::for_user(&user, PAGE_PATH),
            id: created.request.id.to_string(),
            title: &created.request.title,
            link,
            expires: Timestamp::minutes(created.request.expires_at),
            passphrase: created.request.has_passphrase,
        },
    )
}

pub struct SubmissionRow {
    pub receipt: String,
    pub name: String,
    pub email: String,
    pub organisation: String,
    pub phone: String,
    pub patient_reference: String,
    pub message: String,
    pub started: Timestamp,
    pub finished: Option<Timestamp>,
    pub receipt_hash: Option<String>,
    pub files: usize,
}

pub struct FileRow {
    pub upload_id: String,
    pub name: String,
    pub size: String,
    pub sha256: String,
    pub state: &'static str,
    pub received: Timestamp,
    pub receipt: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "requests_show.html")]
pub struct ShowPage {
    pub layout: Layout,
    pub id: String,
    pub title: String,
    pub instructions: String,
    pub owner: String,
    pub status: &'static str,
    pub badge: &'static str,
    pub open: bool,
    pub revoked: bool,
    pub files: u64,
    pub max_files: u64,
    pub received: String,
    pub max_bytes: String,
    pub passphrase: bool,
    pub required: String,
    pub created: Timestamp,
    pub expires: Timestamp,
    pub first_file: Option<Timestamp>,
    pub last_activity: Option<Timestamp>,
    pub submissions: Vec<SubmissionRow>,
    pub file_rows: Vec<FileRow>,
    pub may_change: bool,
    pub max_days: u32,
    pub default_days: u32,
}

fn file_row(f: &ReceiptFile, details: &Details) -> FileRow {
    let receipt = details
        .submissions
        .iter()
        .find(|s| f.submission_id.as_deref() == Some(s.id.as_str()))
        .map(|s| s.receipt_number.clone())
        .unwrap_or_default();
    FileRow {
        upload_id: f.upload_id.clone(),
        name: f.shown_name().to_string(),
        size: f.human_size(),
        sha256: f.sha256.clone().unwrap_or_default(),
        state: f.state.label(),
        received: Timestamp::seconds(f.received_at),
        receipt,
    }
}

pub async fn show(
    user: CurrentUser,
    id: web::Path<String>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let id = request_id(&id)?;
    let details = manage::details(&ctx.db, &ctx.keyring, &manager(&user), &id).await?;
    let now = ctx.clock.now_naive();
    let r = &details.request;
    let status = r.status(now);
    let required = SenderField::ALL
        .into_iter()
        .filter(|f| r.required.contains(*f))
        .map(SenderField::label)
        .collect::<Vec<_>>()
        .join(", ");
    let page = ShowPage {
        layout: Layout::for_user(&user, PAGE_PATH),
        id: r.id.to_string(),
        title: r.title.clone(),
        instructions: r.instructions.clone(),
        owner: details.owner_email.clone(),
        status: status.label(),
        badge: badge(status),
        open: status == Status::Open,
        revoked: status == Status::Revoked,
        files: details.usage.files,
        max_files: r.limits.files(),
        received: size::human(details.usage.bytes),
        max_bytes: size::human(r.limits.bytes()),
        passphrase: r.has_passphrase,
        required: if required.is_empty() {
            "None".into()
        } else {
            required
        },
        created: Timestamp::minutes(r.created_at),
        expires: Timestamp::minutes(r.expires_at),
        first_file: r.first_file_at.map(Timestamp::minutes),
        last_activity: r.last_activity_at.map(Timestamp::minutes),
        submissions: details
            .submissions
            .iter()
            .map(|s| SubmissionRow {
                receipt: s.receipt_number.clone(),
                name: s.sender.name.clone(),
                email: s.sender.email.clone().unwrap_or_default(),
                organisation: s.sender.organisation.clone(),
                phone: s.sender.phone.clone(),
                patient_reference: s.sender.patient_reference.clone(),
                message: s.sender.message.clone(),
                started: Timestamp::minutes(s.started_at),
                finished: s.finished_at.map(Timestamp::minutes),
                receipt_hash: s.receipt_hash.clone(),
                files: s.files,
            })
            .collect(),
        file_rows: details
            .files
            .iter()
            .map(|f| file_row(f, &details))
            .collect(),
        may_change: user.role != Role::Auditor,
        max_days: MAX_EXPIRY_DAYS,
        default_days: DEFAULT_EXPIRY_DAYS,
    };
    render(StatusCode::OK, &page)
}

async fn apply(
    user: &CurrentUser,
    ctx: &UploadContext,
    raw_id: &str,
    change: Change,
    done: &str,
    unchanged: &str,
) -> Result<HttpResponse, AppError> {
    let id = request_id(raw_id)?;
    let changed = manage::change(&ctx.db, &ctx.clock, &manager(user), &id, change).await?;
    if changed {
        session::flash(&user.session, "success", done);
    } else {
        session::flash(&user.session, "info", unchanged);
    }
    Ok(see_other(&format!("{PAGE_PATH}/{id}")))
}

#[derive(serde::Deserialize)]
pub struct ExtendForm {
    #[serde(default)]
    expires_days: String,
}

pub async fn extend(
    user: CurrentUser,
    id: web::Path<String>,
    form: web::Form<ExtendForm>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let days = match ExpiryDays::parse(&form.expires_days) {
        Ok(days) => days,
        Err(e) => {
            session::flash(
                &user.session,
                "error",
                format!("The number of days {}.", e.message),
            );
            return Ok(see_other(&format!("{PAGE_PATH}/{}", request_id(&id)?)));
        }
    };
    apply(
        &user,
        &ctx,
        &id,
        Change::Extend(days),
        &format!(
            "The request is open for {} more days from now.",
            days.days()
        ),
        "A closed or revoked request cannot be extended; create a new one.",
    )
    .await
}

/// Closing and revoking: one form each, no fields; the path's last word says which.
pub async fn end(
    req: HttpRequest,
    user: CurrentUser,
    id: web::Path<String>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let (change, done, unchanged) = match req.path().rsplit('/').next().unwrap_or("") {
        "close" => (
            Change::Close,
            "The request is closed: its link no longer takes files.",
            "The request was already closed.",
        ),
        "revoke" => (
            Change::Revoke,
            "The link is revoked: it stopped working at once, also for anyone sending right now.",
            "The link was already revoked.",
        ),
        _ => return Err(AppError::NotFound),
    };
    apply(&user, &ctx, &id, change, done, unchanged).await
}
