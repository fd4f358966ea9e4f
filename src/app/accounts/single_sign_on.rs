//! Sign-in through the organisation's OpenID Provider.
//!
//! The provider proves who someone is; medport decides what they may do. The role comes
//! from the configured groups or roles claim at every sign-in (the provider is the source
//! of truth, so a removal there takes effect at the next sign-in); someone with no mapped
//! value is refused. An identity is tied to one medport account by the provider's
//! (issuer, subject) pair, never by email: a first sign-in creates the account, or takes
//! over a local account with the same address only when an admin allowed that and the
//! provider says the address is verified.
//!
//! Admins need a second factor. The provider's counts when its `amr` or `acr` says so
//! (configurable); otherwise medport's own TOTP is asked for, or its enrolment required.

use chrono::NaiveDateTime;

use crate::app::accounts::{passwords, users};
use crate::app::audit::refusals::{self, Refusals};
use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::error::AppError;
use crate::config::OidcSettings;
use crate::domain::email::Email;
use crate::domain::password::Password;
use crate::domain::role::Role;
use crate::infra::db::{Database, DbConnection, repo, write_tx};
pub use crate::infra::oidc::{Identity, OidcError, Pending, Provider};

/// What a completed sign-in leads to.
#[derive(Debug)]
pub enum Admission {
    /// Signed in; `provider_mfa` when the provider's second factor counts.
    SignedIn {
        user: Box<users::UserRow>,
        provider_mfa: bool,
    },
    /// An admin whose provider sign-in had one factor: medport's TOTP comes next.
    SecondFactor { user: Box<users::UserRow> },
}

/// Why someone the provider vouched for (or did not) may not come in; each has a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The ID token or the code was refused.
    NotVerified,
    NoRole,
    NoEmail,
    EmailTaken,
    Disabled,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Self::NotVerified => {
                "The sign-in could not be verified. Please start again; if it keeps failing, tell your IT team."
            }
            Self::NoRole => {
                "Your account at the sign-in provider has no medport role. Ask your IT team to add you to the medport group for your work."
            }
            Self::NoEmail => {
                "Your account at the sign-in provider has no email address, which medport needs. Ask your IT team."
            }
            Self::EmailTaken => {
                "A medport account with your email address already exists. An administrator must allow linking it to single sign-on, or sign in with its password."
            }
            Self::Disabled => "This account is disabled. Ask an administrator.",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::NotVerified => "not verified",
            Self::NoRole => "no mapped role",
            Self::NoEmail => "no email",
            Self::EmailTaken => "email taken by a local account",
            Self::Disabled => "account disabled",
        }
    }
}

/// Whether the provider's answer says a second factor was used.
fn provider_mfa(settings: &OidcSettings, identity: &Identity) -> bool {
    identity.amr.iter().any(|a| settings.mfa_amr.contains(a))
        || identity
            .acr
            .as_ref()
            .is_some_and(|a| settings.mfa_acr.contains(a))
}

/// A provider that cannot be reached: a 503 page that says so.
fn unavailable() -> AppError {
    AppError::refused(
        503,
        "The sign-in provider is not answering. Please try again in a few minutes; emergency accounts can still sign in with a password.",
    )
}

/// Starts a sign-in: where to send the browser, and what it must bring back.
pub async fn begin(provider: &Provider) -> Result<(url::Url, Pending), AppError> {
    provider.start().await.map_err(|e| {
        tracing::warn!(error = %e, "single sign-on could not start");
        unavailable()
    })
}

/// Who is signing in, for the audit trail: where from, and when.
pub struct Attempt<'a> {
    pub origin: Origin,
    pub ip: Option<std::net::IpAddr>,
    pub now: NaiveDateTime,
    pub unix: i64,
    /// Refusals are counted, not stored one by one: someone the provider knows could
    /// otherwise sign in again and again to grow the trail.
    pub refusals: &'a Refusals,
}

/// Finishes a sign-in: the code exchanged and the ID token checked, then the account found,
/// linked or created, its role set, and the outcome audited. A provider that cannot be
/// reached gives the 503 of `unavailable`.
pub async fn complete(
    db: &Database,
    provider: &Provider,
    bcrypt_cost: u32,
    code: String,
    pending: Pending,
    attempt: Attempt<'_>,
) -> Result<Result<Admission, Refusal>, AppError> {
    let Attempt {
        origin,
        ip,
        now,
        unix,
        refusals,
    } = attempt;
    let refused =
        |refusal: Refusal, actor: Actor, email: Option<String>, detail: Option<String>| {
            Event::new(actor, "login", Outcome::Failure)
                .origin(origin.clone())
                .details(serde_json::json!({
                    "method": "single_sign_on",
                    "email": email,
                    "reason": refusal.reason(),
                    "detail": detail,
                }))
        };
    let settings = provider.settings().clone();
    let identity = match provider.finish(code, pending).await {
        Ok(identity) => identity,
        Err(OidcError::Unavailable(reason)) => {
            tracing::warn!(%reason, "single sign-on: the provider is not available");
            return Err(unavailable());
        }
        Err(e) => {
            tracing::warn!(error = %e, "single sign-on refused");
            let detail = e.to_string().chars().take(200).collect::<String>();
            let event = refused(Refusal::NotVerified, Actor::anonymous(), None, Some(detail));
            refusals::record(db, refusals, ip, "sign-in not verified", unix, event).await?;
            return Ok(Err(Refusal::NotVerified));
        }
    };
    let role = settings
        .roles
        .role_for(identity.values.iter().map(String::as_str));
    let mfa = provider_mfa(&settings, &identity);
    let label = identity
        .email
        .clone()
        .unwrap_or_else(|| format!("{} at the provider", identity.subject));
    let Some(role) = role else {
        let event = refused(Refusal::NoRole, Actor::anonymous(), Some(label), None);
        refusals::record(db, refusals, ip, "sign-in without a role", unix, event).await?;
        return Ok(Err(Refusal::NoRole));
    };
    // A new account gets a random password nobody knows: it signs in through the provider,
    // and an admin can still set a password for break-glass use. Hashed here, outside the
    // write transaction (bcrypt takes a quarter of a second); `admit` looks the link up again
    // inside it.
    let unusable_hash = {
        let lookup = identity.clone();
        let linked = db
            .run(move |conn| {
                repo::oidc_identities::user_of(conn, &lookup.issuer, &lookup.subject)
                    .map_err(AppError::from)
            })
            .await?;
        if linked.is_some() {
            None
        } else {
            let secret = crate::infra::crypto::random_token().map_err(AppError::internal)?;
            let hash = tokio::task::spawn_blocking(move || {
                passwords::hash(&Password::for_login(&secret), bcrypt_cost)
            })
            .await
            .map_err(AppError::internal)?
            .map_err(AppError::internal)?;
            Some(hash)
        }
    };
    let link_by_email = settings.link_by_email;
    let email = identity.email.clone();
    let admitted_from = origin.clone();
    let admitted = db
        .run(move |conn| {
            write_tx(conn, |conn| {
                admit(
                    conn,
                    &identity,
                    role,
                    mfa,
                    link_by_email,
                    unusable_hash.as_deref(),
                    admitted_from,
                    now,
                )
            })
        })
        .await?;
    match admitted {
        Ok(admission) => Ok(Ok(admission)),
        Err((refusal, actor)) => {
            let event = refused(refusal, actor, email, None);
            refusals::record(db, refusals, ip, "sign-in refused", unix, event).await?;
            Ok(Err(refusal))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn admit(
    conn: &mut DbConnection,
    identity: &Identity,
    role: Role,
    mfa: bool,
    link_by_email: bool,
    unusable_hash: Option<&str>,
    origin: Origin,
    now: NaiveDateTime,
) -> Result<Result<Admission, (Refusal, Actor)>, AppError> {
    // A refusal is audited by the caller, through the refusal counter.
    let linked = repo::oidc_identities::user_of(conn, &identity.issuer, &identity.subject)?;
    let row = match linked {
        Some(id) => repo::users::by_id(conn, &id)?,
        None => None,
    };
    let row = match row {
        Some(row) => row,
        None => {
            let Some(email) = identity.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
                return Ok(Err((Refusal::NoEmail, Actor::anonymous())));
            };
            match users::find_by_email(conn, &email)? {
                Some(local) => {
                    if !(link_by_email && identity.email_verified) {
                        let actor = Actor::user(&local.id, &local.email);
                        return Ok(Err((Refusal::EmailTaken, actor)));
                    }
                    repo::oidc_identities::link(
                        conn,
                        &identity.issuer,
                        &identity.subject,
                        &local.id,
                        now,
                    )?;
                    audit::record(
                        conn,
                        &Event::new(
                            Actor::user(&local.id, &local.email),
                            "user.link",
                            Outcome::Success,
                        )
                        .origin(origin.clone())
                        .target("user", local.id.clone())
                        .details(serde_json::json!({ "method": "single_sign_on", "by": "verified email" })),
                    )?;
                    local
                }
                None => {
                    let Some(hash) = unusable_hash else {
                        return Err(AppError::internal(
                            "an unlinked identity without a prepared password hash",
                        ));
                    };
                    let id = users::create(
                        conn,
                        &users::NewUser {
                            email: &email,
                            role,
                            password_hash: hash,
                            must_change_password: false,
                        },
                        now,
                    )
                    .map_err(|e| match e {
                        users::CreateUserError::EmailTaken => {
                            AppError::internal("the email was taken during the sign-in")
                        }
                        users::CreateUserError::Db(e) => AppError::from(e),
                    })?;
                    if !repo::oidc_identities::link(
                        conn,
                        &identity.issuer,
                        &identity.subject,
                        id.as_str(),
                        now,
                    )? {
                        return Err(AppError::internal(
                            "the identity was linked by a parallel sign-in",
                        ));
                    }
                    audit::record(
                        conn,
                        &Event::new(
                            Actor::user(id.as_str(), email.as_str()),
                            "user.create",
                            Outcome::Success,
                        )
                        .origin(origin.clone())
                        .target("user", id.as_str())
                        .details(serde_json::json!({ "method": "single_sign_on", "role": role.as_str() })),
                    )?;
                    repo::users::by_id(conn, id.as_str())?
                        .ok_or_else(|| AppError::internal("the new account vanished"))?
                }
            }
        }
    };
    let actor = Actor::user(&row.id, &row.email);
    if row.disabled {
        return Ok(Err((Refusal::Disabled, actor)));
    }
    let mut row = row;
    if row.role != role.as_str() {
        repo::users::set_role(conn, &row.id, role.as_str(), now)?;
        audit::record(
            conn,
            &Event::new(actor.clone(), "user.role", Outcome::Success)
                .origin(origin.clone())
                .target("user", row.id.clone())
                .details(serde_json::json!({
                    "from": row.role, "to": role.as_str(), "by": "single_sign_on"
                })),
        )?;
        row.role = role.as_str().to_string();
    }
    let second_step = role == Role::Admin && !mfa && row.totp_enabled();
    audit::record(
        conn,
        &Event::new(
            actor,
            if second_step {
                "login.password"
            } else {
                "login"
            },
            Outcome::Success,
        )
        .origin(origin)
        .target("user", row.id.clone())
        .details(serde_json::json!({
            "method": "single_sign_on",
            "second_factor": if mfa { Some("provider") } else { None },
        })),
    )?;
    Ok(Ok(if second_step {
        Admission::SecondFactor {
            user: Box::new(row),
        }
    } else {
        Admission::SignedIn {
            user: Box::new(row),
            provider_mfa: mfa,
        }
    }))
}
