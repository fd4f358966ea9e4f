//! Page models: one askama template struct per page, all sharing `Layout`.

use askama::Template;
use askama_web::WebTemplate;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone)]
pub struct NavItem {
    pub href: String,
    pub label: String,
    pub current: bool,
}

#[derive(Debug, Clone)]
pub struct Flash {
    /// `success`, `error` or `info`: picks the style and the ARIA role.
    pub kind: &'static str,
    pub message: String,
}

/// What every page's frame needs: navigation, the signed-in user, flash messages and the
/// CSRF token for forms and htmx.
#[derive(Debug, Clone)]
pub struct Layout {
    pub csrf_token: String,
    pub nav: Vec<NavItem>,
    pub user_email: Option<String>,
    pub flashes: Vec<Flash>,
    pub version: &'static str,
}

impl Layout {
    /// The frame for visitors who are not signed in (and for error pages).
    pub fn anonymous(csrf_token: impl Into<String>) -> Self {
        Self {
            csrf_token: csrf_token.into(),
            nav: Vec::new(),
            user_email: None,
            flashes: Vec::new(),
            version: VERSION,
        }
    }
}

impl Layout {
    /// The frame for a signed-in user: navigation by role, pending flash messages.
    pub fn for_user(user: &crate::web::extractors::CurrentUser, current_path: &str) -> Self {
        use crate::domain::role::Role;
        let mut items: Vec<(&str, &str)> = vec![("/uploads", "Uploads"), ("/studies", "Studies")];
        if user.role != Role::Auditor {
            items.push(("/requests", "Requests"));
        }
        if user.role == Role::Admin {
            items.push(("/admin/users", "Users"));
            items.push(("/admin/buckets", "Buckets"));
            items.push(("/admin/uploads/quarantine", "Quarantine"));
            items.push(("/admin/notifications", "Notifications"));
            items.push(("/admin/security", "Security"));
        }
        if matches!(user.role, Role::Admin | Role::Auditor) {
            items.push(("/admin/audit", "Audit log"));
        }
        items.push(("/account", "Account"));
        let nav = items
            .into_iter()
            .map(|(href, label)| NavItem {
                current: current_path == href || current_path.starts_with(&format!("{href}/")),
                href: href.to_string(),
                label: label.to_string(),
            })
            .collect();
        Self {
            csrf_token: user.csrf_token.clone(),
            nav,
            user_email: Some(user.email.clone()),
            flashes: crate::web::session::take_flashes(&user.session),
            version: VERSION,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub error: Option<String>,
    pub email: String,
    pub next: String,
    /// The command that creates the first administrator, shown only on this machine.
    pub first_run: Option<String>,
    /// "Sign in with ...": the provider's label, when single sign-on is set up.
    pub single_sign_on: Option<String>,
    /// Password sign-in is for the break-glass accounts only.
    pub password_note: bool,
}

/// A step to the sign-in provider: a link the page follows by itself (a form's redirect to
/// another origin would break `form-action 'self'`).
#[derive(Template, WebTemplate)]
#[template(path = "login_redirect.html")]
pub struct LoginRedirectPage {
    pub layout: Layout,
    pub title: &'static str,
    pub message: &'static str,
    pub href: String,
}

/// The provider's answer, handed on from the GET callback to the POST that reads the session.
#[derive(Template, WebTemplate)]
#[template(path = "login_continue.html")]
pub struct LoginContinuePage {
    pub layout: Layout,
    pub code: String,
    pub state: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "login_totp.html")]
pub struct LoginTotpPage {
    pub layout: Layout,
    pub error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
pub struct HomePage {
    pub layout: Layout,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub title: String,
    pub message: String,
    pub request_id: Option<String>,
}

/// Where the shared upload UI (`templates/_upload_widget.html`) sends files.
pub struct UploadWidget {
    pub tus_endpoint: &'static str,
    pub batches_endpoint: &'static str,
    /// A sender's files go to the request's bucket: there is nothing to choose.
    pub bucket_hidden: bool,
    pub history_link: bool,
    /// Whether the page has a plain form (no JavaScript) fallback.
    pub plain_form: bool,
}

impl UploadWidget {
    pub const SIGNED_IN: Self = Self {
        tus_endpoint: "/tus/",
        batches_endpoint: "/batches",
        bucket_hidden: false,
        history_link: true,
        plain_form: true,
    };

    pub const SENDER: Self = Self {
        tus_endpoint: "/tus/send/",
        batches_endpoint: "/batches/send",
        bucket_hidden: true,
        history_link: false,
        plain_form: true,
    };
}
