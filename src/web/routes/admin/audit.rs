//! The audit log for auditors and TOTP-enrolled admins: a filtered, paged view with the
//! hash-chain status, and a CSV export of everything the filters match. Reading the log is
//! not audited (it changes nothing); exporting it is.

mod csv;
mod filter;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use futures_util::Stream;

use crate::app::audit::{self, AuditRow, Event, Outcome, Verification};
use crate::app::error::AppError;
use crate::domain::FieldError;
use crate::domain::clock::Clock;
use crate::infra::db::Database;
use crate::web::extractors::Auditor;
use crate::web::respond::render;
use crate::web::timestamp::Timestamp;
use crate::web::views::Layout;
use filter::{AuditFilter, PAGE_SIZE, RawQuery};

crate::route_table! {
    GET "/admin/audit" => index,
    GET "/admin/audit.csv" => export_csv,
}

const PAGE_PATH: &str = "/admin/audit";
/// Rows read from the database per step of a CSV export; only one step is held in memory.
const EXPORT_BATCH: i64 = 1000;

fn field_label(field: &str) -> &'static str {
    match field {
        "user" => "User",
        "action" => "Action",
        "outcome" => "Outcome",
        "from" => "From date",
        "to" => "To date",
        "page" => "Page",
        _ => "A filter",
    }
}

/// The filter form as typed, echoed back with its messages.
#[derive(Debug, Clone, Default)]
pub struct FilterForm {
    pub user: String,
    pub action: String,
    pub outcome: String,
    pub from: String,
    pub to: String,
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
            action: keep(&raw.action),
            outcome: keep(&raw.outcome),
            from: keep(&raw.from),
            to: keep(&raw.to),
            errors: Vec::new(),
        }
    }

    pub fn error(&self, field: &str) -> Option<String> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| format!("{} {}.", field_label(e.field), e.message))
    }
}

/// The hash-chain status shown above the log.
pub struct ChainBanner {
    pub intact: bool,
    pub checked: u64,
    pub broken_at: i64,
    pub reason: &'static str,
}

impl From<Verification> for ChainBanner {
    fn from(v: Verification) -> Self {
        match v.broken {
            None => Self {
                intact: true,
                checked: v.checked,
                broken_at: 0,
                reason: "",
            },
            Some(b) => Self {
                intact: false,
                checked: v.checked,
                broken_at: b.id,
                reason: b.reason,
            },
        }
    }
}

/// One event, ready to show (askama escapes every field).
pub struct EventView {
    pub id: i64,
    pub time: Timestamp,
    pub actor: String,
    pub actor_id: String,
    pub action: String,
    pub outcome: String,
    pub badge: &'static str,
    pub target: String,
    pub ip: String,
    pub details: String,
}

impl From<AuditRow> for EventView {
    fn from(row: AuditRow) -> Self {
        let badge = match row.outcome.as_str() {
            "success" => "badge-ok",
            "denied" => "badge-warn",
            "failure" => "badge-bad",
            _ => "badge-muted",
        };
        let target = match (row.target_type, row.target_id) {
            (Some(kind), Some(id)) => format!("{kind} {id}"),
            (Some(kind), None) => kind,
            (None, Some(id)) => id,
            (None, None) => String::new(),
        };
        Self {
            id: row.id,
            time: Timestamp::seconds(row.occurred_at),
            actor: row.actor_label,
            actor_id: row.actor_user_id.unwrap_or_default(),
            action: row.action,
            outcome: row.outcome,
            badge,
            target,
            ip: row.ip.unwrap_or_default(),
            details: row.details,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_audit.html")]
pub struct AuditPage {
    pub layout: Layout,
    /// `None` when the filters were refused (nothing was read).
    pub chain: Option<ChainBanner>,
    pub form: FilterForm,
    pub actions: Vec<String>,
    pub outcomes: [&'static str; 3],
    pub events: Vec<EventView>,
    pub total: i64,
    pub page: u32,
    pub pages: i64,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
    pub csv_href: String,
}

impl AuditPage {
    fn new(auditor: &Auditor, form: FilterForm, actions: Vec<String>) -> Self {
        Self {
            layout: Layout::for_user(&auditor.0, PAGE_PATH),
            chain: None,
            form,
            actions,
            outcomes: [
                Outcome::Success.as_str(),
                Outcome::Failure.as_str(),
                Outcome::Denied.as_str(),
            ],
            events: Vec::new(),
            total: 0,
            page: 1,
            pages: 1,
            prev_href: None,
            next_href: None,
            csv_href: format!("{PAGE_PATH}.csv"),
        }
    }
}

fn href(path: &str, query: String) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

pub async fn index(
    auditor: Auditor,
    query: web::Query<RawQuery>,
    db: web::Data<Database>,
) -> Result<HttpResponse, AppError> {
    let raw = query.into_inner();
    let mut form = FilterForm::echo(&raw);
    let actions = db.run(filter::actions).await?;
    let (filter, page) = match raw.parse() {
        Ok(parsed) => parsed,
        Err(errors) => {
            form.errors = errors;
            return render(
                StatusCode::BAD_REQUEST,
                &AuditPage::new(&auditor, form, actions),
            );
        }
    };
    let wanted = filter.clone();
    let (listing, chain) = futures_util::future::try_join(
        db.run(move |conn| filter::page(conn, &wanted, page)),
        db.run(|conn| audit::verify(conn).map_err(AppError::from)),
    )
    .await?;
    let (rows, total) = listing;
    let mut view = AuditPage::new(&auditor, form, actions);
    view.chain = Some(chain.into());
    view.events = rows.into_iter().map(EventView::from).collect();
    view.total = total;
    view.page = page;
    view.pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    if page > 1 {
        view.prev_href = Some(href(PAGE_PATH, filter.query_string(Some(page - 1))));
    }
    if i64::from(page) * PAGE_SIZE < total {
        view.next_href = Some(href(PAGE_PATH, filter.query_string(Some(page + 1))));
    }
    view.csv_href = href(&format!("{PAGE_PATH}.csv"), filter.query_string(None));
    render(StatusCode::OK, &view)
}

pub async fn export_csv(
    auditor: Auditor,
    query: web::Query<RawQuery>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let (filter, _) = query.parse().map_err(|errors| {
        let problems: Vec<String> = errors
            .iter()
            .map(|e| format!("{} {}.", field_label(e.field), e.message))
            .collect();
        AppError::BadRequest(format!(
            "The export filters are not valid. {}",
            problems.join(" ")
        ))
    })?;
    let user = auditor.0;
    let event = Event::new(user.actor(), "audit.export", Outcome::Success).origin(user.origin());
    // The export covers the events up to the newest one now; its own event comes after.
    let event = event.details(serde_json::json!({
        "format": "csv",
        "filters": filter.as_json(),
    }));
    let upper = audit::start_export(&db, filter.to_repo(), event).await?;
    let stamp = clock.now().format("%Y%m%d-%H%M%S");
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"medport-audit-{stamp}.csv\""),
        ))
        .streaming(export_stream(db.get_ref().clone(), filter, upper)))
}

enum Cursor {
    Header,
    After(i64),
    Done,
}

/// The header, then the matching rows with ids up to `upper` in id order, one batch at a
/// time. A database failure part-way ends the response early (the client sees a truncated
/// download, never a silently short file that looks complete); the cause goes to the log.
fn export_stream(
    db: Database,
    filter: AuditFilter,
    upper: i64,
) -> impl Stream<Item = Result<web::Bytes, actix_web::Error>> {
    futures_util::stream::unfold(Cursor::Header, move |cursor| {
        let db = db.clone();
        let filter = filter.clone();
        async move {
            let after = match cursor {
                Cursor::Done => return None,
                Cursor::Header => {
                    return Some((Ok(web::Bytes::from(csv::header())), Cursor::After(0)));
                }
                Cursor::After(after) => after,
            };
            let batch = db
                .run(move |conn| filter::batch(conn, &filter, after, upper, EXPORT_BATCH))
                .await;
            match batch {
                Err(e) => {
                    tracing::error!(error = %e, "audit export stopped part-way");
                    Some((
                        Err(actix_web::error::ErrorInternalServerError(
                            "audit export failed",
                        )),
                        Cursor::Done,
                    ))
                }
                Ok(rows) => {
                    let last = rows.last()?.id;
                    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= EXPORT_BATCH;
                    let mut out = String::with_capacity(rows.len() * 320);
                    for row in &rows {
                        csv::push_row(&mut out, row);
                    }
                    let next = if full {
                        Cursor::After(last)
                    } else {
                        Cursor::Done
                    };
                    Some((Ok(web::Bytes::from(out)), next))
                }
            }
        }
    })
}
