//! The user's own sessions: the list (this device first) and signing them out.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;

use super::{render, see_other};
use crate::app::accounts::sessions;
use crate::app::error::AppError;
use crate::domain::clock::Clock;
use crate::infra::db::Database;
use crate::web::extractors::CurrentUser;
use crate::web::session_cookie::SessionCookie;
use crate::web::timestamp::Timestamp;
use crate::web::views::Layout;

pub struct SessionView {
    id: String,
    device: String,
    ip: String,
    created: Timestamp,
    last_seen: Timestamp,
    current: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "account_sessions.html")]
pub struct SessionsPage {
    layout: Layout,
    sessions: Vec<SessionView>,
    others: usize,
}

pub async fn sessions_page(
    req: HttpRequest,
    user: CurrentUser,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let rows = sessions::live(&db, &user.id, clock.now_naive()).await?;
    let current = cookie.session_hash(&req);
    let mut sessions: Vec<SessionView> = rows
        .into_iter()
        .map(|row| SessionView {
            current: current.as_deref() == Some(row.id_hash.as_str()),
            device: describe_user_agent(row.user_agent.as_deref()),
            ip: row.ip.unwrap_or_else(|| "unknown".into()),
            created: Timestamp::minutes(row.created_at),
            last_seen: Timestamp::minutes(row.last_seen_at),
            id: row.id_hash,
        })
        .collect();
    // This device first, then the others by last activity.
    sessions.sort_by_key(|s| !s.current);
    let others = sessions.iter().filter(|s| !s.current).count();
    render(
        StatusCode::OK,
        &SessionsPage {
            layout: Layout::for_user(&user, "/account/sessions"),
            sessions,
            others,
        },
    )
}

pub async fn revoke_session(
    req: HttpRequest,
    user: CurrentUser,
    path: web::Path<String>,
    db: web::Data<Database>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let target = path.into_inner();
    if !is_session_hash(&target) {
        return Err(AppError::NotFound);
    }
    let this_device = cookie.session_hash(&req).as_deref() == Some(target.as_str());
    let revoked = sessions::sign_out_one(&db, owner(&user), target, this_device).await?;
    if !revoked {
        return Err(AppError::NotFound);
    }
    if this_device {
        user.session.purge();
        return Ok(see_other("/login?signed_out=1"));
    }
    crate::web::session::flash(
        &user.session,
        "success",
        "That session has been signed out.",
    );
    Ok(see_other("/account/sessions"))
}

pub async fn revoke_other_sessions(
    req: HttpRequest,
    user: CurrentUser,
    db: web::Data<Database>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let keep = cookie
        .session_hash(&req)
        .ok_or_else(|| AppError::internal("signed-in request without a session cookie"))?;
    let ended = sessions::sign_out_others(&db, owner(&user), keep).await?;
    let message = match ended {
        0 => "There were no other sessions to sign out.".to_string(),
        1 => "Signed out 1 other session.".to_string(),
        n => format!("Signed out {n} other sessions."),
    };
    crate::web::session::flash(&user.session, "success", message);
    Ok(see_other("/account/sessions"))
}

fn owner(user: &CurrentUser) -> sessions::Owner {
    sessions::Owner {
        id: user.id.clone(),
        actor: user.actor(),
        origin: user.origin(),
    }
}

/// A stored session id: SHA-256 as lowercase hex.
fn is_session_hash(raw: &str) -> bool {
    raw.len() == 64 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// "Firefox on Linux" from a full user-agent string; enough to tell devices apart.
fn describe_user_agent(ua: Option<&str>) -> String {
    let Some(ua) = ua.filter(|u| !u.trim().is_empty()) else {
        return "Unknown browser".into();
    };
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .into_iter()
    .find(|(marker, _)| ua.contains(marker))
    .map(|(_, name)| name.to_string());
    let os = [
        ("Windows", "Windows"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Android", "Android"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(marker, _)| ua.contains(marker))
    .map(|(_, name)| name);
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b,
        (None, Some(o)) => format!("Browser on {o}"),
        (None, None) => {
            let first: String = ua
                .split_whitespace()
                .next()
                .unwrap_or(ua)
                .chars()
                .take(40)
                .collect();
            first
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_shortened() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(describe_user_agent(Some(firefox)), "Firefox on Linux");
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";
        assert_eq!(describe_user_agent(Some(edge)), "Edge on Windows");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
        assert_eq!(describe_user_agent(Some(iphone)), "Safari on iOS");
        assert_eq!(describe_user_agent(None), "Unknown browser");
        assert_eq!(describe_user_agent(Some("  ")), "Unknown browser");
        assert_eq!(describe_user_agent(Some("tool/1.2 extra")), "tool/1.2");
    }

    #[test]
    fn only_stored_session_hashes_are_accepted() {
        assert!(is_session_hash(&"a1".repeat(32)));
        assert!(!is_session_hash(&"A1".repeat(32)));
        assert!(!is_session_hash(&"a1".repeat(31)));
        assert!(!is_session_hash("../../etc"));
    }
}
