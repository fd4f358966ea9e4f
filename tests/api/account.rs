//! The account pages through HTTP: password change, sessions, two-factor enrolment,
//! recovery codes and turning two-factor off.

mod enrolment;
mod overview;
mod own_sessions;
mod password;
mod recovery_codes;
mod two_factor_off;

use std::time::Duration;

use data_encoding::{BASE64, BASE64URL_NOPAD};
use diesel::prelude::*;
use medport::app::accounts::{passwords, totp};
use medport::infra::db::schema::{login_throttles, sessions, users};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, extract_csrf, location, secret_from_page};

const PW: &str = "correct horse battery staple";
const NEW_PW: &str = "a brand new passphrase for me";

#[derive(Debug)]
struct UserState {
    password_hash: String,
    must_change_password: bool,
    totp_secret_sealed: Option<Vec<u8>>,
    totp_last_step: Option<i64>,
    recovery_codes: Option<String>,
}

fn user_state(app: &TestApp, id: &str) -> UserState {
    let mut conn = app.db.conn().unwrap();
    let (password_hash, must_change_password, totp_secret_sealed, totp_last_step, recovery_codes) =
        users::table
            .find(id)
            .select((
                users::password_hash,
                users::must_change_password,
                users::totp_secret_sealed,
                users::totp_last_step,
                users::recovery_codes,
            ))
            .first::<(String, bool, Option<Vec<u8>>, Option<i64>, Option<String>)>(&mut *conn)
            .unwrap();
    UserState {
        password_hash,
        must_change_password,
        totp_secret_sealed,
        totp_last_step,
        recovery_codes,
    }
}

fn session_hashes(app: &TestApp, user_id: &str) -> Vec<String> {
    let mut conn = app.db.conn().unwrap();
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .select(sessions::id_hash)
        .load(&mut *conn)
        .unwrap()
}

fn all_session_states(app: &TestApp) -> Vec<String> {
    let mut conn = app.db.conn().unwrap();
    sessions::table
        .select(sessions::state)
        .load(&mut *conn)
        .unwrap()
}

fn recovery_codes_left(app: &TestApp, id: &str) -> usize {
    user_state(app, id)
        .recovery_codes
        .as_deref()
        .and_then(medport::app::accounts::recovery_codes::StoredCodes::from_json)
        .map_or(0, |c| c.remaining())
}

fn actions(app: &TestApp, action: &str) -> Vec<(String, String)> {
    app.audit_actions_named(action)
        .into_iter()
        .map(|a| (a.1, a.2))
        .collect()
}

fn session_cookie(app: &TestApp) -> String {
    app.cookie_header()
        .split(';')
        .map(str::trim)
        .find_map(|c| c.strip_prefix("medport_session="))
        .unwrap_or_default()
        .to_string()
}

/// Whether this browser is signed in: "/" sends it to `/account`, otherwise to sign in.
async fn signed_in(app: &TestApp, client: &reqwest::Client) -> bool {
    let at = location(&client.get(app.url("/")).send().await.unwrap());
    assert!(at == "/uploads" || at.starts_with("/login"), "{at}");
    at == "/uploads"
}

async fn change_password(
    app: &TestApp,
    current: &str,
    new: &str,
    confirm: &str,
) -> reqwest::Response {
    app.post_form(
        "/account/password",
        &[
            ("current_password", current),
            ("new_password", new),
            ("confirm_password", confirm),
        ],
    )
    .await
}

async fn page(app: &TestApp, path: &str) -> String {
    let res = app.get_html(path).await;
    assert_eq!(res.status(), 200, "GET {path}");
    res.text().await.unwrap()
}

fn current_code(app: &TestApp, secret: &totp::TotpSecret) -> String {
    totp::code_for_step(secret, totp::step_at(app.clock.unix()))
}

/// A six-digit code that matches no step in the accepted window.
fn wrong_code(app: &TestApp, secret: &totp::TotpSecret) -> String {
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| totp::verify(secret, c, app.clock.unix()).is_none())
        .unwrap()
}

fn recovery_codes_on(html: &str) -> Vec<String> {
    let re = regex::Regex::new(r"<code>([a-z2-9]{5}-[a-z2-9]{5})</code>").unwrap();
    re.captures_iter(html).map(|c| c[1].to_string()).collect()
}

/// A field shown with its error: the class, the message and the link between them.
fn assert_field_error(body: &str, field: &str, message: &str) {
    assert!(
        body.contains(message),
        "{field}: {message} missing in {body}"
    );
    assert!(
        body.contains(&format!("aria-describedby=\"{field}-error\""))
            || body.contains(&format!(" {field}-error\"")),
        "{field} not linked to its error"
    );
    assert!(body.contains(&format!("id=\"{field}-error\"")));
    assert!(body.contains("field has-error"));
}

// ---------------------------------------------------------------------------------------
// Password
// ---------------------------------------------------------------------------------------
