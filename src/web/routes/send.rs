//! The sender's pages, with no account: the link (`/r/{token}`: instructions and the sender
//! form), the upload page (`/send`, the same upload UI as signed-in users, against
//! `/tus/send/` and `/batches/send`), the finish, and the receipt (page and text file).
//!
//! Every link that is not valid (unknown, expired, closed, revoked) gets the same page with
//! 404, so tokens cannot be told apart. The sender's session can add files to its one
//! request and read its own receipt; nothing else.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;

use crate::app::buckets::size;
use crate::app::error::AppError;
use crate::app::requests::notices::Portal;
use crate::app::requests::receipt::Receipt;
use crate::app::requests::sending::{self, Link, Refusal};
use crate::app::requests::{UploadRequest, Usage};
use crate::app::uploads::UploadContext;
use crate::domain::FieldError;
use crate::domain::upload_request::{SenderDetails, SenderField};
use crate::web::extractors::request_origin;
use crate::web::respond::{render, see_other};
use crate::web::sender::{self as sender_session, Sender};
use crate::web::session;
use crate::web::timestamp::Timestamp;
use crate::web::views::Layout;

crate::route_table! {
    GET "/r/{token}" => link_page,
    POST "/r/{token}" => start,
    GET "/send" => send_page,
    POST "/send/files" => send_file,
    POST "/send/finish" => finish,
    GET "/send/receipt" => receipt_page,
    GET "/send/receipt.txt" => receipt_text,
    POST "/batches/send" => batch_create,
    GET "/batches/send/{id}" => batch_show,
    POST "/batches/send/{id}/finish" => batch_finish,
}

#[derive(Template, WebTemplate)]
#[template(path = "link_invalid.html")]
pub struct InvalidPage {
    pub layout: Layout,
}

/// The one answer for every link that does not open a request.
fn invalid(session: &Session) -> Result<HttpResponse, AppError> {
    render(
        StatusCode::NOT_FOUND,
        &InvalidPage {
            layout: Layout::anonymous(session::csrf_token(session)?),
        },
    )
}

pub struct SenderInput {
    pub name: &'static str,
    pub label: &'static str,
    pub required: bool,
    pub long: bool,
    pub kind: &'static str,
    pub autocomplete: &'static str,
    pub value: String,
    pub error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "link.html")]
pub struct LinkPage {
    pub layout: Layout,
    pub token: String,
    pub title: String,
    pub instructions: String,
    pub inputs: Vec<SenderInput>,
    pub passphrase: bool,
    pub passphrase_error: Option<String>,
    pub full: bool,
    pub expires: Timestamp,
    pub max_files: u64,
    pub max_bytes: String,
}

fn inputs(
    request: &UploadRequest,
    typed: &[(String, String)],
    errors: &[FieldError],
) -> Vec<SenderInput> {
    SenderField::ALL
        .into_iter()
        .map(|f| SenderInput {
            name: f.as_str(),
            label: f.label(),
            required: request.required.contains(f),
            long: f == SenderField::Message,
            kind: match f {
                SenderField::Email => "email",
                SenderField::Phone => "tel",
                _ => "text",
            },
            autocomplete: match f {
                SenderField::Name => "name",
                SenderField::Email => "email",
                SenderField::Organisation => "organization",
                SenderField::Phone => "tel",
                _ => "off",
            },
            value: typed
                .iter()
                .find(|(k, _)| k == f.as_str())
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            error: FieldError::message_for(errors, f.as_str()).map(str::to_string),
        })
        .collect()
}

fn link_view(
    session: &Session,
    token: &str,
    link: &Link,
    typed: &[(String, String)],
    errors: &[FieldError],
    passphrase_error: Option<String>,
) -> Result<LinkPage, AppError> {
    let r = &link.request;
    Ok(LinkPage {
        layout: Layout::anonymous(session::csrf_token(session)?),
        token: token.to_string(),
        title: r.title.clone(),
        instructions: r.instructions.clone(),
        inputs: inputs(r, typed, errors),
        passphrase: r.has_passphrase,
        passphrase_error,
        full: link.is_full(),
        expires: Timestamp::minutes(r.expires_at),
        max_files: r.limits.files(),
        max_bytes: size::human(r.limits.bytes()),
    })
}

pub async fn link_page(
    session: Session,
    token: web::Path<String>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    match sending::open(&ctx.db, &ctx.clock, &token).await? {
        None => invalid(&session),
        Some(link) => render(
            StatusCode::OK,
            &link_view(&session, &token, &link, &[], &[], None)?,
        ),
    }
}

pub async fn start(
    req: HttpRequest,
    session: Session,
    token: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let Some(link) = sending::open(&ctx.db, &ctx.clock, &token).await? else {
        return invalid(&session);
    };
    let typed: Vec<(String, String)> = form
        .into_inner()
        .into_iter()
        .filter(|(k, _)| k != "csrf_token")
        .map(|(k, v)| (k, v.chars().take(4000).collect()))
        .collect();
    let value = |f: SenderField| {
        typed
            .iter()
            .find(|(k, _)| k == f.as_str())
            .map_or("", |(_, v)| v.as_str())
    };
    let passphrase = typed
        .iter()
        .find(|(k, _)| k == "passphrase")
        .map_or(String::new(), |(_, v)| v.clone());
    let shown: Vec<(String, String)> = typed
        .iter()
        .filter(|(k, _)| k != "passphrase")
        .cloned()
        .collect();
    let details = match SenderDetails::parse(&link.request.required, value) {
        Ok(details) => details,
        Err(errors) => {
            let page = link_view(&session, &token, &link, &shown, &errors, None)?;
            return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    let started = sending::begin(
        &ctx.db,
        &ctx.keyring,
        &ctx.clock,
        &link,
        &passphrase,
        details,
        &request_origin(&req),
    )
    .await?;
    let (status, message) = match started {
        Err(Refusal::NotOpen) => return invalid(&session),
        Ok(started) => {
            session::start_sending(&session, &started.submission)?;
            return Ok(see_other("/send"));
        }
        Err(Refusal::WrongPassphrase) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "The passphrase is not right. Check it with the person who sent you the link."
                .to_string(),
        ),
        Err(Refusal::Throttled(message)) => (StatusCode::TOO_MANY_REQUESTS, message),
        Err(Refusal::Full) => (
            StatusCode::CONFLICT,
            "This request has received all the files it can take.".to_string(),
        ),
    };
    let page = link_view(&session, &token, &link, &shown, &[], Some(message))?;
    render(status, &page)
}

#[derive(Template, WebTemplate)]
#[template(path = "send.html")]
pub struct SendPage {
    pub layout: Layout,
    pub title: String,
    pub instructions: String,
    /// The request's bucket, the one choice the shared upload UI offers.
    pub buckets: Vec<super::uploads::BucketChoice>,
    pub error: Option<String>,
    pub form_action: String,
    /// Scopes the browser's list of resumable uploads to this visit.
    pub owner: String,
    pub max_size: String,
    pub widget: crate::web::views::UploadWidget,
    pub files_left: u64,
    pub bytes_left: String,
    pub expires: Timestamp,
}

pub async fn send_page(
    req: HttpRequest,
    session: Session,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let Some(visit) = sender_session::current(&req).await? else {
        if session::sent(&session).is_some() {
            return Ok(see_other("/send/receipt"));
        }
        return invalid(&session);
    };
    let request = visit.request;
    let id = request.id.clone();
    let usage = ctx.db.run(move |conn| Usage::of(conn, &id)).await?;
    let scope = visit.uploader.sender().ok_or(AppError::Forbidden)?;
    let token = session::csrf_token(&session)?;
    let form_action = format!("/send/files?csrf_token={token}");
    let mut layout = Layout::anonymous(token);
    layout.flashes = session::take_flashes(&session);
    render(
        StatusCode::OK,
        &SendPage {
            layout,
            title: request.title.clone(),
            instructions: request.instructions.clone(),
            buckets: vec![super::uploads::BucketChoice {
                id: request.bucket_id.to_string(),
                name: request.title.clone(),
                types: String::new(),
                limit: String::new(),
                selected: true,
            }],
            error: None,
            form_action,
            owner: scope.submission.to_string(),
            max_size: size::human(ctx.settings.uploads.max_size),
            widget: crate::web::views::UploadWidget::SENDER,
            files_left: request.limits.files().saturating_sub(usage.files),
            bytes_left: size::human(request.limits.bytes().saturating_sub(usage.bytes)),
            expires: Timestamp::minutes(request.expires_at),
        },
    )
}

/// The plain form, for a browser without JavaScript: one file, then back to the page.
pub async fn send_file(
    req: HttpRequest,
    session: Session,
    sender: Sender,
    ctx: web::Data<UploadContext>,
    form: actix_multipart::Multipart,
) -> Result<HttpResponse, AppError> {
    let (_, name) = super::upload_form::receive(&req, &ctx, &sender.0, form).await?;
    session::flash(
        &session,
        "success",
        format!("\u{201c}{name}\u{201d} was received."),
    );
    Ok(see_other("/send"))
}

pub async fn finish(
    session: Session,
    sender: Sender,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let portal = Portal::of(&ctx.settings);
    match sending::finish(&ctx.db, &ctx.keyring, &ctx.clock, &portal, &sender.0).await {
        Ok(submission) => {
            session::finish_sending(&session, &submission)?;
            Ok(see_other("/send/receipt"))
        }
        Err(AppError::Conflict(_, message)) => {
            session::flash(&session, "error", message);
            Ok(see_other("/send"))
        }
        Err(e) => Err(e),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "receipt.html")]
pub struct ReceiptPage {
    pub layout: Layout,
    pub receipt: Receipt,
    pub received: Timestamp,
    pub total: String,
}

async fn own_receipt(session: &Session, ctx: &UploadContext) -> Result<Option<Receipt>, AppError> {
    let Some(submission) = session::sent(session) else {
        return Ok(None);
    };
    sending::receipt(&ctx.db, &ctx.keyring, &submission).await
}

pub async fn receipt_page(
    session: Session,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let Some(receipt) = own_receipt(&session, &ctx).await? else {
        return invalid(&session);
    };
    render(
        StatusCode::OK,
        &ReceiptPage {
            layout: Layout::anonymous(session::csrf_token(&session)?),
            received: Timestamp::seconds(receipt.received_at),
            total: size::human(receipt.total_bytes()),
            receipt,
        },
    )
}

pub async fn receipt_text(
    session: Session,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let Some(receipt) = own_receipt(&session, &ctx).await? else {
        return invalid(&session);
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"receipt-{}.txt\"", receipt.number),
        ))
        .body(receipt.to_text()))
}

// The sender's tus and batch routes: the signed-in routes' handlers, with the sender as the
// uploader (see `web::sender`).

pub async fn tus_create(
    req: HttpRequest,
    sender: Sender,
    ctx: web::Data<UploadContext>,
    body: web::Payload,
) -> Result<HttpResponse, AppError> {
    super::tus::create(req, sender.0, ctx, body).await
}

pub async fn tus_head(
    req: HttpRequest,
    sender: Sender,
    ctx: web::Data<UploadContext>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    super::tus::head(req, sender.0, ctx, path).await
}

pub async fn tus_patch(
    req: HttpRequest,
    sender: Sender,
    ctx: web::Data<UploadContext>,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, AppError> {
    super::tus::patch(req, sender.0, ctx, path, body).await
}

pub async fn tus_delete(
    req: HttpRequest,
    sender: Sender,
    ctx: web::Data<UploadContext>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    super::tus::delete(req, sender.0, ctx, path).await
}

pub async fn batch_create(
    ctx: web::Data<UploadContext>,
    sender: Sender,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    super::batches::create(ctx, sender.0, body).await
}

pub async fn batch_show(
    ctx: web::Data<UploadContext>,
    sender: Sender,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    super::batches::show(ctx, sender.0, path).await
}

pub async fn batch_finish(
    ctx: web::Data<UploadContext>,
    sender: Sender,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    super::batches::finish(ctx, sender.0, path, body).await
}
