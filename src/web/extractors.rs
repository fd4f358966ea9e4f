//! Who is asking, as types. A handler that takes `CurrentUser` only runs for a signed-in,
//! enabled user (an admin only once TOTP is enrolled); `Admin` and `Auditor` add the role
//! check. Checks are never scattered through handlers.

use std::future::Future;
use std::pin::Pin;

use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

use crate::app::accounts::users;
use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::error::AppError;
use crate::domain::ids::UserId;
use crate::domain::role::Role;
use crate::infra::db::Database;
use crate::web::session;

/// Pages a user who must change their password may still reach.
const ALLOWED_BEFORE_PASSWORD_CHANGE: &[&str] = &["/account/password", "/logout"];
/// Pages an admin without TOTP may still reach: one password alone must not open anything
/// an administrator could use (pages, uploads, API keys).
const ALLOWED_BEFORE_TOTP: &[&str] = &[TOTP_ENROLMENT, "/logout"];
const TOTP_ENROLMENT: &str = "/account/totp";

#[derive(Clone)]
pub struct CurrentUser {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    pub totp_enabled: bool,
    pub must_change_password: bool,
    pub session: Session,
    pub csrf_token: String,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

impl std::fmt::Debug for CurrentUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentUser")
            .field("id", &self.id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl CurrentUser {
    pub fn actor(&self) -> Actor {
        Actor::user(self.id.as_str(), &self.email)
    }

    pub fn origin(&self) -> Origin {
        Origin {
            ip: self.ip.clone(),
            request_id: self.request_id.clone(),
        }
    }

    /// This user making a change on a page, for its audit event.
    pub fn changed_by(&self) -> crate::app::accounts::api_keys::ChangedBy {
        crate::app::accounts::api_keys::ChangedBy::web(self.actor(), self.origin())
    }
}

pub fn request_origin(req: &HttpRequest) -> Origin {
    Origin {
        ip: crate::web::client::ip(req).map(|ip| ip.to_string()),
        request_id: req
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(ToString::to_string),
    }
}

use actix_web::HttpMessage;

/// Where to send someone who is not signed in: browsers to the sign-in page (coming back
/// afterwards), scripts and tus clients a plain 401.
pub fn login_required(req: &HttpRequest) -> AppError {
    let path = req.path();
    if path.starts_with("/tus") || path.starts_with("/api/") {
        return AppError::Unauthorized;
    }
    // Tell the sign-in page when the session ended for inactivity, so it can say so.
    let expired = if session::take_expired(&req.get_session()) {
        "expired=1&"
    } else {
        ""
    };
    if req.method() == actix_web::http::Method::GET {
        let target = match req.query_string() {
            "" => path.to_string(),
            q => format!("{path}?{q}"),
        };
        if target == "/" {
            return AppError::SeeOther(
                format!("/login?{}", expired.trim_end_matches('&'))
                    .trim_end_matches('?')
                    .to_string(),
            );
        }
        let next: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
        AppError::SeeOther(format!("/login?{expired}next={next}"))
    } else {
        AppError::SeeOther(
            format!("/login?{}", expired.trim_end_matches('&'))
                .trim_end_matches('?')
                .to_string(),
        )
    }
}

async fn authenticate(req: HttpRequest) -> Result<CurrentUser, AppError> {
    let session = req.get_session();
    let Some(id) = session::user_id(&session) else {
        return Err(login_required(&req));
    };
    let db = req
        .app_data::<web::Data<Database>>()
        .ok_or_else(|| AppError::internal("database not configured"))?
        .clone();
    let lookup = id.clone();
    let row = db
        .run(move |conn| users::find_by_id(conn, &lookup).map_err(AppError::from))
        .await?;
    let row = match row {
        Some(row) if !row.disabled => row,
        // Removed or disabled since sign-in: the session ends now.
        _ => {
            session.purge();
            return Err(login_required(&req));
        }
    };
    let role = row.role()?;
    // A password change comes first; TOTP enrolment is checked once it is done.
    if row.must_change_password {
        if !ALLOWED_BEFORE_PASSWORD_CHANGE.contains(&req.path()) {
            return Err(AppError::SeeOther("/account/password".into()));
        }
    } else if role == Role::Admin
        && !row.totp_enabled()
        && !session::provider_mfa(&session)
        && !ALLOWED_BEFORE_TOTP.contains(&req.path())
    {
        return Err(totp_required(&req, &session));
    }
    let origin = request_origin(&req);
    Ok(CurrentUser {
        role,
        totp_enabled: row.totp_enabled(),
        must_change_password: row.must_change_password,
        email: row.email,
        id,
        csrf_token: session::csrf_token(&session)?,
        session,
        ip: origin.ip,
        request_id: origin.request_id,
    })
}

/// An admin without TOTP: browsers go to enrolment; scripts and tus clients get 403.
fn totp_required(req: &HttpRequest, session: &Session) -> AppError {
    let path = req.path();
    if path.starts_with("/tus") || path.starts_with("/api/") {
        return AppError::Forbidden;
    }
    session::flash(
        session,
        "info",
        "Administrators must turn on two-factor authentication before using medport.",
    );
    AppError::SeeOther(TOTP_ENROLMENT.into())
}

type Fut<T> = Pin<Box<dyn Future<Output = Result<T, AppError>>>>;

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

/// Records a refused attempt to reach a page the user's role does not allow.
async fn deny(req: &HttpRequest, user: &CurrentUser, needed: &'static str) -> AppError {
    if let Some(db) = req.app_data::<web::Data<Database>>().cloned() {
        let event = Event::new(user.actor(), "access.denied", Outcome::Denied)
            .origin(user.origin())
            .details(serde_json::json!({
                "method": req.method().as_str(),
                "path": crate::app::audit::refusals::capped_path(req.path()),
                "needed": needed,
            }));
        if let Err(e) = db
            .run(move |conn| audit::record(conn, &event).map_err(AppError::from))
            .await
        {
            tracing::error!(error = %e, "could not record an access denial");
        }
    }
    AppError::Forbidden
}

/// An administrator who has enrolled TOTP.
#[derive(Debug, Clone)]
pub struct Admin(pub CurrentUser);

impl Admin {
    /// The administrator as the application sees them making a change.
    pub fn acting(&self) -> crate::app::accounts::ActingAdmin {
        crate::app::accounts::ActingAdmin {
            id: self.0.id.clone(),
            actor: self.0.actor(),
            origin: self.0.origin(),
        }
    }
}

impl FromRequest for Admin {
    type Error = AppError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = authenticate(req.clone()).await?;
            if user.role != Role::Admin {
                return Err(deny(&req, &user, "admin").await);
            }
            Ok(Admin(user))
        })
    }
}

/// May read the audit trail: auditors, and administrators who have enrolled TOTP.
#[derive(Debug, Clone)]
pub struct Auditor(pub CurrentUser);

impl FromRequest for Auditor {
    type Error = AppError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = authenticate(req.clone()).await?;
            match user.role {
                Role::Auditor => Ok(Auditor(user)),
                // `authenticate` lets an admin through only once TOTP is enrolled.
                Role::Admin => Ok(Auditor(user)),
                Role::Uploader => Err(deny(&req, &user, "auditor").await),
            }
        })
    }
}
