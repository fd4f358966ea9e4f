//! The upload pages: the new-upload page (tus from the browser, a plain form without
//! JavaScript), the history, one upload's detail page and its live progress fragment.
//!
//! Who sees what: uploaders see their own uploads; administrators (with TOTP) and auditors
//! see everyone's, auditors read-only (they neither upload nor download). An upload the
//! viewer may not see is a 404, so guessing ids reveals nothing.

pub mod history;
mod views;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::app::buckets;
use crate::app::error::AppError;
use crate::app::uploads::model::{self, Upload};
use crate::app::uploads::{UploadContext, UploadStatus};
use crate::domain::FieldError;
use crate::domain::clock::Clock;
use crate::domain::ids::{UploadId, UserId};
use crate::domain::role::Role;
use crate::infra::db::Database;
use crate::web::extractors::CurrentUser;
use crate::web::respond::render;
use crate::web::session;
use crate::web::views::Layout;
use history::{PAGE_SIZE, RawQuery};
use views::UploadView;

crate::route_table! {
    GET "/uploads" => index,
    GET "/uploads/new" => new_page,
    GET "/uploads/{id}" => detail,
    GET "/uploads/{id}/progress" => progress,
}

const HISTORY_PATH: &str = "/uploads";
const NEW_PATH: &str = "/uploads/new";

/// Whose uploads a viewer may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    Own,
    /// Everyone's: administrators manage them, auditors read them.
    All,
}

/// The person looking, with what they may see and fetch.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub id: UserId,
    pub reach: Reach,
    /// An administrator (with TOTP): may download anyone's file.
    pub admin: bool,
}

impl Viewer {
    /// An administrator's wider view needs TOTP, as every admin page does; until it is on,
    /// they are sent to enrol.
    pub(crate) fn of(user: &CurrentUser) -> Result<Self, AppError> {
        let reach = match user.role {
            Role::Uploader => Reach::Own,
            Role::Auditor => Reach::All,
            Role::Admin if user.totp_enabled => Reach::All,
            Role::Admin => {
                session::flash(
                    &user.session,
                    "info",
                    "Administrators must turn on two-factor authentication before using the upload pages.",
                );
                return Err(AppError::SeeOther("/account/totp".into()));
            }
        };
        Ok(Self {
            id: user.id.clone(),
            reach,
            admin: user.role == Role::Admin,
        })
    }

    pub(crate) fn sees(&self, upload: &Upload) -> bool {
        self.reach == Reach::All || upload.user_id == self.id
    }

    /// File contents: the owner and administrators only. Auditors read the history, never
    /// the files.
    pub(crate) fn may_download(&self, upload: &Upload) -> bool {
        self.admin || upload.user_id == self.id
    }
}

/// Auditors only read; everyone else may upload (to the buckets they are granted).
fn may_upload(user: &CurrentUser) -> bool {
    user.role != Role::Auditor
}

/// One upload, ready to show, or 404.
async fn load_view(
    db: &Database,
    clock: &Clock,
    user: &CurrentUser,
    raw_id: &str,
) -> Result<UploadView, AppError> {
    let viewer = Viewer::of(user)?;
    let id = UploadId::parse(raw_id).ok_or(AppError::NotFound)?;
    let now = clock.now_naive();
    db.run(move |conn| {
        let upload = model::find(conn, &id)?
            .filter(|u| viewer.sees(u))
            .ok_or(AppError::NotFound)?;
        let bucket = buckets::queries::find(conn, &upload.bucket_id)?;
        let owner = if viewer.reach == Reach::All {
            let emails = history::owner_emails(conn, &[upload.user_id.as_str()])?;
            Some(history::owner_label(&emails, &upload))
        } else {
            None
        };
        let name = bucket.as_ref().map(|b| b.display_name.as_str());
        let may_download = viewer.may_download(&upload);
        Ok(UploadView::new(&upload, name, owner, now, may_download))
    })
    .await
}

// ---------- New upload ----------

pub struct BucketChoice {
    pub id: String,
    pub name: String,
    pub types: String,
    pub limit: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "uploads_new.html")]
pub struct NewUploadPage {
    pub layout: Layout,
    pub buckets: Vec<BucketChoice>,
    pub may_upload: bool,
    pub error: Option<String>,
    /// The plain form's target; the CSRF token rides in the query string because multipart
    /// bodies are not read by the CSRF layer.
    pub form_action: String,
    /// Scopes the browser's list of resumable uploads to this user.
    pub owner: String,
    pub max_size: String,
    pub widget: crate::web::views::UploadWidget,
}

/// The new-upload page with `status` and an optional message (the plain form answers with
/// it when an upload is refused). `selected` keeps the bucket the user had chosen.
/// What a bucket accepts, spelled out also when it takes every allowlisted type.
fn allowed_types(extensions: &buckets::Extensions) -> String {
    if extensions.is_all() {
        let list: Vec<String> = extensions.list().iter().map(|e| format!(".{e}")).collect();
        format!("{}: {}", extensions.describe(), list.join(", "))
    } else {
        extensions.describe()
    }
}

pub(crate) async fn render_new_page(
    user: &CurrentUser,
    ctx: &UploadContext,
    status: StatusCode,
    error: Option<String>,
    selected: Option<String>,
) -> Result<HttpResponse, AppError> {
    // An admin without TOTP is sent to enrol first, as on the other upload pages.
    Viewer::of(user)?;
    let viewer = user.id.clone();
    let role = user.role;
    let list = ctx
        .db
        .run(move |conn| buckets::visible_to(conn, &viewer, role))
        .await?;
    let first = list.first().map(|b| b.id.to_string());
    let selected = selected
        .filter(|s| list.iter().any(|b| b.id.as_str() == s))
        .or(first)
        .unwrap_or_default();
    let token: String = url::form_urlencoded::byte_serialize(user.csrf_token.as_bytes()).collect();
    let page = NewUploadPage {
        layout: Layout::for_user(user, NEW_PATH),
        buckets: list
            .into_iter()
            .map(|b| BucketChoice {
                selected: b.id.as_str() == selected,
                id: b.id.to_string(),
                types: allowed_types(&b.extensions),
                limit: b.size_limit_human(),
                name: b.display_name,
            })
            .collect(),
        may_upload: may_upload(user),
        error,
        form_action: format!("{HISTORY_PATH}?csrf_token={token}"),
        owner: user.id.to_string(),
        max_size: buckets::size::human(ctx.settings.uploads.max_size),
        widget: crate::web::views::UploadWidget::SIGNED_IN,
    };
    render(status, &page)
}

pub async fn new_page(
    user: CurrentUser,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    render_new_page(&user, &ctx, StatusCode::OK, None, None).await
}

// ---------- History ----------

/// The filter form as typed, echoed back with its messages.
#[derive(Debug, Default)]
pub struct FilterForm {
    pub user: String,
    pub status: String,
    pub errors: Vec<FieldError>,
}

impl FilterForm {
    fn echo(raw: &RawQuery) -> Self {
        let keep = |v: &Option<String>| -> String {
            v.as_deref()
                .unwrap_or("")
                .trim()
                .chars()
                .take(256)
                .collect()
        };
        Self {
            user: keep(&raw.user),
            status: keep(&raw.status),
            errors: Vec::new(),
        }
    }

    pub fn error(&self, field: &str) -> Option<String> {
        let label = match field {
            "user" => "User",
            "status" => "Status",
            _ => "Page",
        };
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| format!("{label} {}.", e.message))
    }
}

#[derive(Template)]
#[template(path = "uploads_history.html")]
pub struct HistoryPage {
    pub layout: Layout,
    pub rows: Vec<history::HistoryRow>,
    pub show_owner: bool,
    pub may_upload: bool,
    pub form: FilterForm,
    /// (value, label) for the status filter.
    pub statuses: Vec<(&'static str, &'static str)>,
    pub filtered: bool,
    pub unknown_user: bool,
    pub total: i64,
    /// The count stopped at `total`: there are more.
    pub more: bool,
    pub page: u32,
    pub pages: i64,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
    /// Quarantined uploads awaiting an admin (0 for everyone else).
    pub quarantined: i64,
}

pub async fn index(
    user: CurrentUser,
    query: web::Query<RawQuery>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let viewer = Viewer::of(&user)?;
    let all = viewer.reach == Reach::All;
    let raw = query.into_inner();
    let mut page = HistoryPage {
        layout: Layout::for_user(&user, HISTORY_PATH),
        rows: Vec::new(),
        show_owner: all,
        may_upload: may_upload(&user),
        form: FilterForm::echo(&raw),
        statuses: UploadStatus::ALL
            .into_iter()
            .map(|s| (s.as_str(), s.label()))
            .collect(),
        filtered: false,
        unknown_user: false,
        total: 0,
        more: false,
        page: 1,
        pages: 1,
        prev_href: None,
        next_href: None,
        quarantined: 0,
    };
    if user.role == crate::domain::role::Role::Admin {
        page.quarantined = db
            .run(crate::app::uploads::model::quarantined_count)
            .await
            .map_err(AppError::from)?;
    }
    let wanted = match raw.parse(all) {
        Ok(w) => w,
        Err(errors) => {
            page.form.errors = errors;
            return render(StatusCode::BAD_REQUEST, &page);
        }
    };
    let now = clock.now_naive();
    let query = wanted.clone();
    let listing = db
        .run(move |conn| history::page(conn, &viewer, &query, now))
        .await?;
    page.filtered = wanted.status.is_some() || wanted.who != history::Who::Everyone;
    page.rows = listing.rows;
    page.unknown_user = listing.unknown_user;
    page.total = listing.total;
    page.more = listing.more;
    page.page = wanted.page;
    page.pages = ((listing.total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    if wanted.page > 1 {
        page.prev_href = Some(wanted.href(wanted.page - 1));
    }
    if listing.more || i64::from(wanted.page) * PAGE_SIZE < listing.total {
        page.next_href = Some(wanted.href(wanted.page + 1));
    }
    render(StatusCode::OK, &page)
}

// ---------- One upload ----------

#[derive(Template)]
#[template(path = "uploads_detail.html")]
pub struct DetailPage {
    pub layout: Layout,
    pub row: UploadView,
    pub show_owner: bool,
}

pub async fn detail(
    user: CurrentUser,
    path: web::Path<String>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let row = load_view(&db, &clock, &user, &path).await?;
    let page = DetailPage {
        layout: Layout::for_user(&user, HISTORY_PATH),
        show_owner: row.owner.is_some(),
        row,
    };
    render(StatusCode::OK, &page)
}

/// The history row (default), or with `?view=status` the compact status block the detail
/// page and the upload page's file list poll.
#[derive(Template)]
#[template(path = "uploads_row.html")]
pub struct RowFragment {
    pub row: UploadView,
    pub show_owner: bool,
}

#[derive(Template)]
#[template(path = "uploads_status.html")]
pub struct StatusFragment {
    pub row: UploadView,
}

#[derive(Debug, Deserialize)]
pub struct ProgressQuery {
    view: Option<String>,
}

pub async fn progress(
    user: CurrentUser,
    path: web::Path<String>,
    query: web::Query<ProgressQuery>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let row = load_view(&db, &clock, &user, &path).await?;
    if query.view.as_deref() == Some("status") {
        return render(StatusCode::OK, &StatusFragment { row });
    }
    let show_owner = row.owner.is_some();
    render(StatusCode::OK, &RowFragment { row, show_owner })
}
