//! What the user pages show, and the read-only queries behind them: the list and one
//! account. Columns are selected one by one, so secrets are never even loaded.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::NaiveDateTime;

use super::{NAV, parse_id, render};
use crate::app::error::AppError;
use crate::domain::clock::Clock;
use crate::domain::ids::UserId;
use crate::domain::role::Role;
use crate::infra::db::{Database, DbConnection, repo};
use crate::web::extractors::Admin;
use crate::web::views::Layout;

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

pub(super) fn role_options(selected: &str) -> Vec<RoleOption> {
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
    pub totp: Option<String>,
}

impl Errors {
    pub(super) fn email(message: impl Into<String>) -> Self {
        let email = Some(message.into());
        Self {
            email,
            ..Self::default()
        }
    }

    pub(super) fn role(message: impl Into<String>) -> Self {
        let role = Some(message.into());
        Self {
            role,
            ..Self::default()
        }
    }

    pub(super) fn password(message: impl Into<String>) -> Self {
        let password = Some(message.into());
        Self {
            password,
            ..Self::default()
        }
    }

    pub(super) fn status(message: impl Into<String>) -> Self {
        let status = Some(message.into());
        Self {
            status,
            ..Self::default()
        }
    }

    pub(super) fn totp(message: impl Into<String>) -> Self {
        let totp = Some(message.into());
        Self {
            totp,
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

impl TryFrom<repo::users::AdminView> for UserView {
    type Error = AppError;

    fn try_from(row: repo::users::AdminView) -> Result<Self, AppError> {
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
    repo::users::admin_views(conn)?
        .into_iter()
        .map(UserView::try_from)
        .collect()
}

pub(super) fn one_user(conn: &mut DbConnection, id: &UserId) -> Result<UserView, AppError> {
    repo::users::admin_view(conn, id.as_str())?
        .ok_or(AppError::NotFound)?
        .try_into()
}

fn active_sessions(
    conn: &mut DbConnection,
    id: &UserId,
    now: NaiveDateTime,
) -> Result<i64, AppError> {
    Ok(repo::sessions::active_count(conn, id.as_str(), now)?)
}

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

pub async fn show(
    admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    user_page(&admin, &db, &clock, id, Errors::default(), StatusCode::OK).await
}

pub(super) async fn user_page(
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
