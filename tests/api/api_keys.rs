//! API keys: created on the account page or the command line, shown once, stored only as a
//! hash, accepted only as `Authorization: Bearer`, limited by scope, revocable and
//! rotatable by their owner alone.

mod cli;
mod create;
mod refused;
mod rotate;
mod scopes;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use medport::infra::db::schema::{api_keys, audit_events, buckets, sessions, uploads};
use medport::web::api_principal::ApiPrincipal;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp, api_get, location, medport};

const KEY_PATTERN: &str = r"mp_[a-z0-9]{8}_[A-Za-z0-9]{40}";

fn find_key(html: &str) -> Option<String> {
    regex::Regex::new(KEY_PATTERN)
        .unwrap()
        .find(html)
        .map(|m| m.as_str().to_string())
}

/// Creates a key on the account page (as the main browser's user); returns the page and key.
async fn create_key(app: &TestApp, name: &str, scopes: &[&str], expires: &str) -> (String, String) {
    let mut fields = vec![("name", name), ("expires_days", expires)];
    fields.extend(scopes.iter().map(|s| ("scopes", *s)));
    let res = app.post_form("/account/api-keys", &fields).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["cache-control"],
        "no-store",
        "the key page is never cached"
    );
    let html = res.text().await.unwrap();
    let key = find_key(&html).unwrap_or_else(|| panic!("no key on the result page: {html}"));
    (html, key)
}

fn prefix_of(key: &str) -> &str {
    &key[3..11]
}

pub(crate) fn key_id(app: &TestApp, key: &str) -> String {
    let mut conn = app.db.conn().unwrap();
    api_keys::table
        .filter(api_keys::prefix.eq(prefix_of(key)))
        .select(api_keys::id)
        .first(&mut *conn)
        .unwrap()
}

fn challenge(res: &reqwest::Response) -> String {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

pub(crate) async fn assert_refused(app: &TestApp, key: &str) {
    let res = api_get(app, "/api/v1/me", key).await;
    assert_eq!(res.status(), 401);
    assert!(challenge(&res).starts_with("Bearer"), "{:?}", res.headers());
}

/// The secret part of a key (everything after the public prefix).
fn secret_part(key: &str) -> &str {
    &key[12..]
}
