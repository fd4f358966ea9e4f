//! Creating an account: the form, and the account with a one-time password that the user
//! must replace at their first sign-in.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::pages::{Errors, NewUserPage, role_options};
use super::{
    FormResult, NAV, ONE_TIME, fields, hash_off_thread, message, render, see_other, user_path,
};
use crate::app::accounts::user_admin;
use crate::app::error::AppError;
use crate::config::Settings;
use crate::domain::clock::Clock;
use crate::domain::email::Email;
use crate::domain::password::Password;
use crate::domain::role::Role;
use crate::infra::db::Database;
use crate::web::extractors::Admin;
use crate::web::session;
use crate::web::views::Layout;

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
            totp: None,
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
    let now = clock.now_naive();
    match user_admin::create_account(&db, &admin.acting(), &email, role, hash, now).await? {
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
        Err(refusal) => {
            let errors = Errors::email(refusal.message());
            new_form_again(&admin, form, errors)
        }
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
