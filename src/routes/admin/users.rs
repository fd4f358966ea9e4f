//! User administration: the list, account creation, and the actions on one account (role,
//! disable / enable, one-time password, sign-out everywhere). Every handler takes `Admin`
//! (an administrator with TOTP); every change commits with its audit event in one write
//! transaction. The pages never show a password hash, TOTP seed, recovery code or API key.
//!
//! The last active administrator can be neither demoted nor disabled. The check counts the
//! active administrators inside the transaction that makes the change: SQLite's
//! `BEGIN IMMEDIATE` admits one writer at a time, and on PostgreSQL the active
//! administrators' rows are locked first, so two admins demoting each other at the same
//! moment are serialised and the second is refused.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, Actor, Event, Origin, Outcome};
use crate::auth::extractors::Admin;
use crate::auth::users::{self, CreateUserError, NewUser};
use crate::auth::{SessionCookie, passwords, session};
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::schema::{sessions, users as u};
use crate::db::{Database, DbConnection, DbError, write_tx};
use crate::domain::FieldError;
use crate::domain::email::Email;
use crate::domain::ids::UserId;
use crate::domain::password::{Password, PasswordPolicy};
use crate::domain::role::Role;
use crate::error::AppError;
use crate::views::Layout;
use crate::web::error_pages::keep_body;

crate::route_table! {
    GET "/admin/users" => list,
    GET "/admin/users/new" => new_form,
    POST "/admin/users" => create,
    GET "/admin/users/{id}" => show,
    POST "/admin/users/{id}/role" => change_role,
    POST "/admin/users/{id}/disable" => disable,
    POST "/admin/users/{id}/enable" => enable,
    POST "/admin/users/{id}/reset-password" => reset_password,
    POST "/admin/users/{id}/revoke-sessions" => revoke_sessions,
}

const NAV: &str = "/admin/users";
const LAST_ADMIN: &str = "There must always be at least one active administrator.";
const EMAIL_TAKEN: &str = "An account with this email address already exists.";
/// An admin-set password is temporary, and the account may have no TOTP yet: full length.
const ONE_TIME: PasswordPolicy = PasswordPolicy {
    totp_enabled: false,
};

// ---------- Pages ----------

/// What these pages show about an account. Selected column by column, so secrets are never
/// even loaded.
pub struct UserView {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub totp_enabled: bool,
    pub must_change_password: bool,
    pub created: String,
    pub password_changed: String,
}

pub struct RoleOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

fn role_options(selected: &str) -> Vec<RoleOption> {
    Role::ALL
        .into_iter()
        .map(|role| RoleOption {
            value: role.as_str(),
            label: role.label(),
            selected: role.as_str() == selected,
        })
        .collect()
}

/// Messages shown under the fields (or the access section) they are about.
#[derive(Default)]
pub struct Errors {
    pub email: Option<String>,
    pub role: Option<String>,
    pub password: Option<String>,
    pub status: Option<String>,
}

impl Errors {
    fn email(message: impl Into<String>) -> Self {
        let email = Some(message.into());
        Self {
            email,
            ..Self::default()
        }
    }

    fn role(message: impl Into<String>) -> Self {
        let role = Some(message.into());
        Self {
            role,
            ..Self::default()
        }
    }

    fn password(message: impl Into<String>) -> Self {
        let password = Some(message.into());
        Self {
            password,
            ..Self::default()
        }
    }

    fn status(message: impl Into<String>) -> Self {
        let status = Some(message.into());
        Self {
            status,
            ..Self::default()
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_users.html")]
pub struct UserListPage {
    pub layout: Layout,
    pub users: Vec<UserView>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_users_new.html")]
pub struct NewUserPage {
    pub layout: Layout,
    pub email: String,
    pub roles: Vec<RoleOption>,
    pub errors: Errors,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_users_show.html")]
pub struct UserPage {
    pub layout: Layout,
    pub user: UserView,
    pub roles: Vec<RoleOption>,
    pub active_sessions: i64,
    pub is_self: bool,
    pub errors: Errors,
}

fn render(status: StatusCode, page: &impl Template) -> Result<HttpResponse, AppError> {
    let html = page.render().map_err(AppError::internal)?;
    Ok(keep_body(
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
    ))
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn user_path(id: &UserId) -> String {
    format!("/admin/users/{id}")
}

/// "Email address" + "is required" -> "Email address is required."
fn message(label: &str, error: &FieldError) -> String {
    format!("{label} {}.", error.message)
}

/// An id from the URL: anything but a canonical user id is simply not found.
fn parse_id(raw: &str) -> Result<UserId, AppError> {
    UserId::parse(raw).ok_or(AppError::NotFound)
}

/// Form bodies are read after the role check has run: every field defaults to empty, and an
/// unreadable body is only reported once the handler (behind `Admin`) runs.
type FormResult<T> = Result<web::Form<T>, actix_web::Error>;

fn fields<T>(form: FormResult<T>) -> Result<T, AppError> {
    form.map(web::Form::into_inner).map_err(|_| {
        AppError::BadRequest("The form could not be read. Reload the page and try again.".into())
    })
}

// ---------- Queries ----------

/// The columns these pages read: never the hash, seed or recovery codes.
#[derive(Queryable, Selectable)]
#[diesel(table_name = u)]
struct ViewRow {
    id: String,
    email: String,
    role: String,
    disabled: bool,
    #[diesel(select_expression = u::totp_secret_sealed.is_not_null())]
    #[diesel(select_expression_type = diesel::dsl::IsNotNull<u::totp_secret_sealed>)]
    totp_enabled: bool,
    must_change_password: bool,
    created_at: NaiveDateTime,
    password_changed_at: NaiveDateTime,
}

impl TryFrom<ViewRow> for UserView {
    type Error = AppError;

    fn try_from(row: ViewRow) -> Result<Self, AppError> {
        Ok(Self {
            role: Role::parse(&row.role)
                .map_err(|_| AppError::internal("unknown role in users table"))?,
            id: row.id,
            email: row.email,
            disabled: row.disabled,
            totp_enabled: row.totp_enabled,
            must_change_password: row.must_change_password,
            created: row.created_at.format("%Y-%m-%d").to_string(),
            password_changed: row
                .password_changed_at
                .format("%Y-%m-%d %H:%M UTC")
                .to_string(),
        })
    }
}

fn all_users(conn: &mut DbConnection) -> Result<Vec<UserView>, AppError> {
    let rows = u::table
        .select(ViewRow::as_select())
        .order(u::email.asc())
        .load(conn)?;
    rows.into_iter().map(UserView::try_from).collect()
}

fn one_user(conn: &mut DbConnection, id: &UserId) -> Result<UserView, AppError> {
    let row = u::table
        .find(id.as_str())
        .select(ViewRow::as_select())
        .first(conn)
        .optional()?;
    row.ok_or(AppError::NotFound)?.try_into()
}

fn active_sessions(
    conn: &mut DbConnection,
    id: &UserId,
    now: NaiveDateTime,
) -> Result<i64, AppError> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(id.as_str()))
        .filter(sessions::expires_at.gt(now))
        .count()
        .get_result(conn)?)
}

/// Counts the active administrators for a change that may remove one. On PostgreSQL their
/// rows stay locked (taken in id order, so concurrent changes queue instead of deadlocking)
/// until the transaction ends; on SQLite `write_tx` already admits a single writer.
fn lock_active_admins(conn: &mut DbConnection) -> Result<usize, DbError> {
    let active = u::table
        .filter(u::role.eq(Role::Admin.as_str()))
        .filter(u::disabled.eq(false))
        .order(u::id.asc())
        .select(u::id);
    let ids: Vec<String> = match conn {
        DbConnection::Postgresql(pg) => active.for_update().load(pg)?,
        other => active.load(other)?,
    };
    Ok(ids.len())
}

// ---------- List and create ----------

pub async fn list(admin: Admin, db: web::Data<Database>) -> Result<HttpResponse, AppError> {
    let users = db.run(all_users).await?;
    render(
        StatusCode::OK,
        &UserListPage {
            layout: Layout::for_user(&admin.0, NAV),
            users,
        },
    )
}

pub async fn new_form(admin: Admin) -> Result<HttpResponse, AppError> {
    render(
        StatusCode::OK,
        &NewUserPage {
            layout: Layout::for_user(&admin.0, NAV),
            email: String::new(),
            roles: role_options(Role::Uploader.as_str()),
            errors: Errors::default(),
        },
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewUserForm {
    email: String,
    role: String,
    password: String,
}

/// Every field checked, so the form comes back with all its problems at once. The password
/// rules need the address (a password may not contain it), so a password is only judged
/// next to a valid address.
fn parse_new_user(form: &NewUserForm) -> Result<(Email, Role, Password), Errors> {
    let email = Email::parse(&form.email);
    let role = Role::parse(&form.role);
    let password = email
        .as_ref()
        .ok()
        .map(|email| Password::parse_new(&form.password, email, ONE_TIME));
    match (email, role, password) {
        (Ok(email), Ok(role), Some(Ok(password))) => Ok((email, role, password)),
        (email, role, password) => Err(Errors {
            email: email.err().map(|e| message("Email address", &e)),
            role: role.err().map(|e| message("Role", &e)),
            password: password
                .and_then(Result::err)
                .map(|e| message("Password", &e)),
            status: None,
        }),
    }
}

pub async fn create(
    admin: Admin,
    form: FormResult<NewUserForm>,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let form = fields(form)?;
    let (email, role, password) = match parse_new_user(&form) {
        Ok(parsed) => parsed,
        Err(errors) => return new_form_again(&admin, form, errors),
    };
    let hash = hash_off_thread(password, settings.bcrypt_cost).await?;
    let event = Event::new(admin.0.actor(), "user.create", Outcome::Success)
        .origin(admin.0.origin())
        .details(json!({ "email": email.as_str(), "role": role.as_str() }));
    let now = clock.now_naive();
    let new_email = email.clone();
    let created = db
        .run(move |conn| {
            write_tx(conn, |conn| {
                let new = NewUser {
                    email: &new_email,
                    role,
                    password_hash: &hash,
                    must_change_password: true,
                };
                let id = users::create(conn, &new, now).map_err(|e| match e {
                    CreateUserError::EmailTaken => Failure::Refused(Refusal::EmailTaken),
                    CreateUserError::Db(e) => Failure::Error(e.into()),
                })?;
                audit::record(conn, &event.target("user", id.as_str()))?;
                Ok(id)
            })
        })
        .await;
    match created {
        Ok(id) => {
            session::flash(
                &admin.0.session,
                "success",
                format!(
                    "Account created for {}. Give them the one-time password through a separate channel; they must choose their own when they first sign in.",
                    email.as_str()
                ),
            );
            Ok(see_other(&user_path(&id)))
        }
        Err(Failure::Refused(refusal)) => {
            let errors = Errors::email(refusal.message());
            new_form_again(&admin, form, errors)
        }
        Err(Failure::Error(e)) => Err(e),
    }
}

/// The form again with its messages; what was typed is kept, except the password.
fn new_form_again(
    admin: &Admin,
    form: NewUserForm,
    errors: Errors,
) -> Result<HttpResponse, AppError> {
    render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &NewUserPage {
            layout: Layout::for_user(&admin.0, NAV),
            email: form.email,
            roles: role_options(&form.role),
            errors,
        },
    )
}

/// bcrypt is slow on purpose: it runs on the blocking pool.
async fn hash_off_thread(password: Password, cost: u32) -> Result<String, AppError> {
    web::block(move || passwords::hash(&password, cost))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)
}

// ---------- One account ----------

pub async fn show(
    admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    user_page(&admin, &db, &clock, id, Errors::default(), StatusCode::OK).await
}

async fn user_page(
    admin: &Admin,
    db: &Database,
    clock: &Clock,
    id: UserId,
    errors: Errors,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let now = clock.now_naive();
    let is_self = admin.0.id == id;
    let (user, active_sessions) = db
        .run(move |conn| {
            Ok::<_, AppError>((one_user(conn, &id)?, active_sessions(conn, &id, now)?))
        })
        .await?;
    render(
        status,
        &UserPage {
            layout: Layout::for_user(&admin.0, NAV),
            roles: role_options(user.role.as_str()),
            user,
            active_sessions,
            is_self,
            errors,
        },
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RoleForm {
    role: String,
}

pub async fn change_role(
    admin: Admin,
    path: web::Path<String>,
    form: FormResult<RoleForm>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    match Role::parse(&fields(form)?.role) {
        Ok(role) => apply(&admin, &db, &clock, id, Action::SetRole(role), None).await,
        Err(e) => {
            let errors = Errors::role(message("Role", &e));
            user_page(
                &admin,
                &db,
                &clock,
                id,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

pub async fn disable(
    admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    apply(&admin, &db, &clock, id, Action::Disable, None).await
}

pub async fn enable(
    admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    apply(&admin, &db, &clock, id, Action::Enable, None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PasswordForm {
    password: String,
}

#[allow(clippy::too_many_arguments)]
pub async fn reset_password(
    admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    form: FormResult<PasswordForm>,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
    clock: web::Data<Clock>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let raw = fields(form)?.password;
    let lookup = id.clone();
    let user = db.run(move |conn| one_user(conn, &lookup)).await?;
    let email = Email::parse(&user.email).map_err(AppError::internal)?;
    let password = match Password::parse_new(&raw, &email, ONE_TIME) {
        Ok(password) => password,
        Err(e) => {
            let errors = Errors::password(message("Password", &e));
            return user_page(
                &admin,
                &db,
                &clock,
                id,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let hash = hash_off_thread(password, settings.bcrypt_cost).await?;
    let keep = own_session(&admin, &id, &req, &cookie);
    apply(&admin, &db, &clock, id, Action::ResetPassword(hash), keep).await
}

pub async fn revoke_sessions(
    admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let keep = own_session(&admin, &id, &req, &cookie);
    apply(&admin, &db, &clock, id, Action::RevokeSessions, keep).await
}

/// An admin resetting their own password or signing out everywhere keeps the session they
/// are using (a role change or disabling still ends it).
fn own_session(
    admin: &Admin,
    id: &UserId,
    req: &HttpRequest,
    cookie: &SessionCookie,
) -> Option<String> {
    (admin.0.id == *id)
        .then(|| cookie.session_hash(req))
        .flatten()
}

// ---------- Changes ----------

enum Action {
    SetRole(Role),
    Disable,
    Enable,
    /// A new one-time password (bcrypt hash): must be changed at the next sign-in.
    ResetPassword(String),
    RevokeSessions,
}

impl Action {
    fn audit_name(&self) -> &'static str {
        match self {
            Self::SetRole(_) => "user.role_change",
            Self::Disable => "user.disable",
            Self::Enable => "user.enable",
            Self::ResetPassword(_) => "user.password_reset",
            Self::RevokeSessions => "session.revoke",
        }
    }

    fn may_remove_an_admin(&self) -> bool {
        matches!(self, Self::Disable) || matches!(self, Self::SetRole(r) if *r != Role::Admin)
    }

    fn ends_sessions(&self) -> bool {
        !matches!(self, Self::Enable)
    }

    fn done_message(&self, email: &str, ended: usize) -> String {
        match self {
            Self::SetRole(role) => format!(
                "{email} is now {}. They have been signed out everywhere.",
                role.label()
            ),
            Self::Disable => format!("{email} is disabled and has been signed out everywhere."),
            Self::Enable => format!("{email} can sign in again."),
            Self::ResetPassword(_) => format!(
                "A one-time password is set for {email}. They have been signed out and must choose a new password when they next sign in."
            ),
            Self::RevokeSessions => format!("Ended {ended} session(s) of {email}."),
        }
    }

    fn unchanged_message(&self, email: &str) -> String {
        match self {
            Self::SetRole(role) => format!("{email} is already {}.", role.label()),
            Self::Disable => format!("{email} is already disabled."),
            Self::Enable => format!("{email} is already enabled."),
            Self::ResetPassword(_) | Self::RevokeSessions => {
                format!("Nothing changed for {email}.")
            }
        }
    }
}

enum Change {
    Done {
        email: String,
        sessions_ended: usize,
    },
    Unchanged {
        email: String,
    },
}

/// A rule the admin can act on, as opposed to an error.
enum Refusal {
    EmailTaken,
    LastAdmin,
}

impl Refusal {
    fn message(&self) -> &'static str {
        match self {
            Self::EmailTaken => EMAIL_TAKEN,
            Self::LastAdmin => LAST_ADMIN,
        }
    }
}

enum Failure {
    Refused(Refusal),
    Error(AppError),
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Self::Error(e)
    }
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        Self::Error(e.into())
    }
}

impl From<diesel::result::Error> for Failure {
    fn from(e: diesel::result::Error) -> Self {
        Self::Error(e.into())
    }
}

/// Runs one action and answers: back to the account with a message, or its page again with
/// the reason it was refused.
async fn apply(
    admin: &Admin,
    db: &Database,
    clock: &Clock,
    id: UserId,
    action: Action,
    keep_session: Option<String>,
) -> Result<HttpResponse, AppError> {
    let actor = admin.0.actor();
    let origin = admin.0.origin();
    let now = clock.now_naive();
    let target = id.clone();
    let (action, result) = db
        .run(move |conn| {
            let result = write_tx(conn, |conn| {
                change(
                    conn,
                    &target,
                    &action,
                    keep_session.as_deref(),
                    actor,
                    origin,
                    now,
                )
            });
            Ok::<_, DbError>((action, result))
        })
        .await?;
    let is_self = admin.0.id == id;
    match result {
        Ok(Change::Done {
            email,
            sessions_ended,
        }) => {
            let text = action.done_message(&email, sessions_ended);
            session::flash(&admin.0.session, "success", text);
            // Their own role change or disabling ended the session in use.
            if is_self && matches!(action, Action::SetRole(_) | Action::Disable) {
                return Ok(see_other("/login"));
            }
            Ok(see_other(&user_path(&id)))
        }
        Ok(Change::Unchanged { email }) => {
            session::flash(&admin.0.session, "info", action.unchanged_message(&email));
            Ok(see_other(&user_path(&id)))
        }
        Err(Failure::Refused(refusal)) => {
            record_refusal(admin, db, &id, &action).await?;
            let message = refusal.message();
            let errors = match action {
                Action::SetRole(_) => Errors::role(message),
                _ => Errors::status(message),
            };
            user_page(admin, db, clock, id, errors, StatusCode::CONFLICT).await
        }
        Err(Failure::Error(e)) => Err(e),
    }
}

/// The whole of one action, inside the caller's write transaction: look up, check the
/// last-admin rule, change, end sessions, audit.
fn change(
    conn: &mut DbConnection,
    id: &UserId,
    action: &Action,
    keep_session: Option<&str>,
    actor: Actor,
    origin: Origin,
    now: NaiveDateTime,
) -> Result<Change, Failure> {
    // Locks first (PostgreSQL), then the read, so the read sees any change just committed.
    let active_admins = if action.may_remove_an_admin() {
        lock_active_admins(conn)?
    } else {
        0
    };
    let user = users::find_by_id(conn, id)?.ok_or(AppError::NotFound)?;
    let email = user.email.clone();
    let from = user.role()?;
    let unchanged = match action {
        Action::SetRole(to) => *to == from,
        Action::Disable => user.disabled,
        Action::Enable => !user.disabled,
        Action::ResetPassword(_) | Action::RevokeSessions => false,
    };
    if unchanged {
        return Ok(Change::Unchanged { email });
    }
    if action.may_remove_an_admin() && from == Role::Admin && !user.disabled && active_admins <= 1 {
        return Err(Failure::Refused(Refusal::LastAdmin));
    }

    let row = u::table.find(id.as_str());
    let mut details = match action {
        Action::SetRole(to) => {
            diesel::update(row)
                .set((u::role.eq(to.as_str()), u::updated_at.eq(now)))
                .execute(conn)?;
            json!({ "from": from.as_str(), "to": to.as_str() })
        }
        Action::Disable | Action::Enable => {
            let disabled = matches!(action, Action::Disable);
            diesel::update(row)
                .set((u::disabled.eq(disabled), u::updated_at.eq(now)))
                .execute(conn)?;
            json!({})
        }
        Action::ResetPassword(hash) => {
            users::set_password(conn, id, hash, true, now)?;
            json!({ "must_change_password": true })
        }
        Action::RevokeSessions => json!({}),
    };
    let sessions_ended = if action.ends_sessions() {
        users::end_sessions(conn, id, keep_session)?
    } else {
        0
    };
    if action.ends_sessions() {
        let key = if matches!(action, Action::RevokeSessions) {
            "count"
        } else {
            "sessions_ended"
        };
        details[key] = json!(sessions_ended);
    }
    let event = Event::new(actor, action.audit_name(), Outcome::Success)
        .origin(origin)
        .target("user", id.as_str())
        .details(details);
    audit::record(conn, &event)?;
    Ok(Change::Done {
        email,
        sessions_ended,
    })
}

/// A refused attempt is recorded too (the change itself was rolled back).
async fn record_refusal(
    admin: &Admin,
    db: &Database,
    id: &UserId,
    action: &Action,
) -> Result<(), AppError> {
    let mut details = json!({ "reason": "last active administrator" });
    if let Action::SetRole(to) = action {
        details["to"] = json!(to.as_str());
    }
    let event = Event::new(admin.0.actor(), action.audit_name(), Outcome::Denied)
        .origin(admin.0.origin())
        .target("user", id.as_str())
        .details(details);
    db.run(move |conn| write_tx(conn, |conn| audit::record(conn, &event).map(drop)))
        .await
        .map_err(AppError::from)
}
