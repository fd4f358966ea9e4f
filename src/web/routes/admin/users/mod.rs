//! User administration: the list, account creation, and the actions on one account (role,
//! disable / enable, one-time password, sign-out everywhere, two-factor reset). Every
//! handler takes `Admin` (an administrator with TOTP). The handlers read the request and
//! answer; the changes, their rules and their audit events live in `auth::user_admin`.
//! The pages never show a password hash, TOTP seed, recovery code or API key.

mod actions;
mod create;
mod pages;

use actix_web::web;

use super::{FormResult, fields};
use crate::app::accounts::passwords;
use crate::app::error::AppError;
use crate::domain::FieldError;
use crate::domain::ids::UserId;
use crate::domain::password::{Password, PasswordPolicy};
use crate::web::respond::{render, see_other};

crate::route_table! {
    GET "/admin/users" => pages::list,
    GET "/admin/users/new" => create::new_form,
    POST "/admin/users" => create::create,
    GET "/admin/users/{id}" => pages::show,
    POST "/admin/users/{id}/role" => actions::change_role,
    POST "/admin/users/{id}/disable" => actions::disable,
    POST "/admin/users/{id}/enable" => actions::enable,
    POST "/admin/users/{id}/reset-password" => actions::reset_password,
    POST "/admin/users/{id}/revoke-sessions" => actions::revoke_sessions,
    POST "/admin/users/{id}/reset-totp" => actions::reset_totp,
}

const NAV: &str = "/admin/users";
/// An admin-set password is temporary, and the account may have no TOTP yet: full length.
const ONE_TIME: PasswordPolicy = PasswordPolicy {
    totp_enabled: false,
};

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

/// bcrypt is slow on purpose: it runs on the blocking pool.
async fn hash_off_thread(password: Password, cost: u32) -> Result<String, AppError> {
    web::block(move || passwords::hash(&password, cost))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)
}
