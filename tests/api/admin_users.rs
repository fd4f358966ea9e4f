//! User administration through HTTP: creating accounts, role changes, disabling, one-time
//! passwords, ending sessions, two-factor resets, the last-administrator rule, and access
//! by role.

mod access;
mod create;
mod disable;
mod enable;
mod reset;
mod revoke_sessions;
mod roles;
mod two_factor;

use diesel::prelude::*;
use medport::infra::db::schema::{api_keys, sessions, users};
use medport::web::routes::admin::users::ROUTES;

use crate::both_backends;
use crate::helpers::{Backend, SignedIn, TestApp, browser_signed_in, extract_csrf, location};

const PW: &str = "correct horse battery staple";
const ONE_TIME: &str = "violet anchor midnight parade";
const LAST_ADMIN: &str = "There must always be at least one active administrator.";
const OWN_TWO_FACTOR: &str = "You cannot reset your own two-factor authentication: without it you would be locked out of the admin pages at once. Another administrator must do it.";

// ---------- Helpers ----------

#[derive(Debug)]
struct UserFacts {
    email: String,
    role: String,
    disabled: bool,
    must_change_password: bool,
    password_hash: String,
}

fn user_facts(app: &TestApp, id: &str) -> UserFacts {
    let mut conn = app.db.conn().unwrap();
    let (email, role, disabled, must_change_password, password_hash) = users::table
        .find(id)
        .select((
            users::email,
            users::role,
            users::disabled,
            users::must_change_password,
            users::password_hash,
        ))
        .first::<(String, String, bool, bool, String)>(&mut *conn)
        .unwrap();
    UserFacts {
        email,
        role,
        disabled,
        must_change_password,
        password_hash,
    }
}

fn user_count(app: &TestApp) -> i64 {
    let mut conn = app.db.conn().unwrap();
    users::table.count().get_result(&mut *conn).unwrap()
}

fn active_admins(app: &TestApp) -> i64 {
    let mut conn = app.db.conn().unwrap();
    medport::app::accounts::users::count_active_admins(&mut conn).unwrap()
}

/// The two-factor columns: sealed seed, last used step, stored recovery codes.
type TwoFactorColumns = (Option<Vec<u8>>, Option<i64>, Option<String>);

fn two_factor_columns(app: &TestApp, id: &str) -> TwoFactorColumns {
    let mut conn = app.db.conn().unwrap();
    users::table
        .find(id)
        .select((
            users::totp_secret_sealed,
            users::totp_last_step,
            users::recovery_codes,
        ))
        .first(&mut *conn)
        .unwrap()
}

fn session_count(app: &TestApp, id: &str) -> i64 {
    let mut conn = app.db.conn().unwrap();
    sessions::table
        .filter(sessions::user_id.eq(id))
        .count()
        .get_result(&mut *conn)
        .unwrap()
}

/// The CSRF token of a browser's signed-in session, read from the session store (some roles
/// can reach no page that shows a form).
fn stored_csrf(app: &TestApp, user_id: &str) -> String {
    let mut conn = app.db.conn().unwrap();
    let states: Vec<String> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .select(sessions::state)
        .load(&mut *conn)
        .unwrap();
    assert_eq!(states.len(), 1, "one session for {user_id}");
    let state: std::collections::HashMap<String, String> =
        serde_json::from_str(&states[0]).unwrap();
    serde_json::from_str(&state["csrf"]).unwrap()
}

/// POST a form from the main (admin) browser with the token shown on the admin pages.
async fn admin_post(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    app.post_form_from("/admin/users/new", path, fields).await
}

async fn body(res: reqwest::Response) -> String {
    res.text().await.unwrap()
}

/// Where "/" sends a browser: `/account` when signed in, `/login` when not.
async fn home(app: &TestApp, client: &reqwest::Client) -> String {
    location(&client.get(app.url("/")).send().await.unwrap())
}

fn h1_count(html: &str) -> usize {
    html.matches("<h1").count()
}
