//! Single sign-on through an OpenID Provider (`MEDPORT_OIDC_*`), and whether password sign-in
//! stays open to everyone or only to the break-glass accounts.
//!
//! The client secret is accepted from the environment or from a file named in the settings,
//! never from `medport.toml` itself, and only ever held in a `SecretString`.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, FileSettings, Settings, Val};
use crate::domain::email::Email;
use crate::domain::role::Role;

/// Who may sign in with a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSignIn {
    /// Every local account (the default).
    All,
    /// Only these addresses: the emergency ("break-glass") accounts for when the provider is
    /// down or misconfigured. Everyone else signs in through the provider.
    BreakGlass(BTreeSet<String>),
}

impl PasswordSignIn {
    pub fn allows(&self, email: &str) -> bool {
        match self {
            Self::All => true,
            Self::BreakGlass(emails) => emails.contains(email),
        }
    }
}

/// How a provider's values name medport's roles. The first role, in the order admin,
/// uploader, auditor, whose values meet the user's wins.
#[derive(Debug, Clone, Default)]
pub struct RoleMapping {
    pub admin: BTreeSet<String>,
    pub uploader: BTreeSet<String>,
    pub auditor: BTreeSet<String>,
}

impl RoleMapping {
    pub fn role_for<'a>(&self, values: impl IntoIterator<Item = &'a str> + Clone) -> Option<Role> {
        [
            (Role::Admin, &self.admin),
            (Role::Uploader, &self.uploader),
            (Role::Auditor, &self.auditor),
        ]
        .into_iter()
        .find(|(_, wanted)| values.clone().into_iter().any(|v| wanted.contains(v)))
        .map(|(role, _)| role)
    }
}

#[derive(Clone)]
pub struct OidcSettings {
    /// The issuer as the provider names itself; discovery reads
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: url::Url,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Requested besides `openid`.
    pub scopes: Vec<String>,
    /// The ID token claim holding group or role values (a string or an array of strings).
    pub roles_claim: String,
    pub roles: RoleMapping,
    /// `amr` values that mean the provider checked a second factor.
    pub mfa_amr: BTreeSet<String>,
    /// `acr` values that mean the same.
    pub mfa_acr: BTreeSet<String>,
    /// A first provider sign-in may take over a local account with the same, verified,
    /// email address. Off unless an admin allows it.
    pub link_by_email: bool,
    pub clock_skew: Duration,
    /// The button's text: "Sign in with {label}".
    pub label: String,
}

// Hand-written so the client secret never reaches a log line.
impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("roles_claim", &self.roles_claim)
            .finish_non_exhaustive()
    }
}

/// The callback path the provider redirects to, under the public URL.
pub const CALLBACK_PATH: &str = "/auth/oidc/callback";

#[derive(Debug, Default)]
pub(super) struct RawOidc {
    issuer: Option<Val>,
    client_id: Option<Val>,
    client_secret: Option<Val>,
    client_secret_file: Option<Val>,
    scopes: Option<Val>,
    roles_claim: Option<Val>,
    admin_values: Option<Val>,
    uploader_values: Option<Val>,
    auditor_values: Option<Val>,
    mfa_amr: Option<Val>,
    mfa_acr: Option<Val>,
    link_by_email: Option<Val>,
    clock_skew: Option<Val>,
    label: Option<Val>,
    password_sign_in: Option<Val>,
    break_glass: Option<Val>,
}

impl RawOidc {
    pub(super) fn merge(file: &mut FileSettings, env: &HashMap<String, String>) -> Self {
        let pick = |key: &str, file_value: Option<String>, var: &str| {
            super::pick(env, key, file_value, var)
        };
        let list = |v: Option<Vec<String>>| v.map(|v| v.join(","));
        Self {
            issuer: pick(
                "oidc_issuer",
                file.oidc_issuer.take(),
                "MEDPORT_OIDC_ISSUER",
            ),
            client_id: pick(
                "oidc_client_id",
                file.oidc_client_id.take(),
                "MEDPORT_OIDC_CLIENT_ID",
            ),
            client_secret: pick("", None, "MEDPORT_OIDC_CLIENT_SECRET"),
            client_secret_file: pick(
                "oidc_client_secret_file",
                file.oidc_client_secret_file.take(),
                "MEDPORT_OIDC_CLIENT_SECRET_FILE",
            ),
            scopes: pick(
                "oidc_scopes",
                list(file.oidc_scopes.take()),
                "MEDPORT_OIDC_SCOPES",
            ),
            roles_claim: pick(
                "oidc_roles_claim",
                file.oidc_roles_claim.take(),
                "MEDPORT_OIDC_ROLES_CLAIM",
            ),
            admin_values: pick(
                "oidc_admin_values",
                list(file.oidc_admin_values.take()),
                "MEDPORT_OIDC_ADMIN_VALUES",
            ),
            uploader_values: pick(
                "oidc_uploader_values",
                list(file.oidc_uploader_values.take()),
                "MEDPORT_OIDC_UPLOADER_VALUES",
            ),
            auditor_values: pick(
                "oidc_auditor_values",
                list(file.oidc_auditor_values.take()),
                "MEDPORT_OIDC_AUDITOR_VALUES",
            ),
            mfa_amr: pick(
                "oidc_mfa_amr",
                list(file.oidc_mfa_amr.take()),
                "MEDPORT_OIDC_MFA_AMR",
            ),
            mfa_acr: pick(
                "oidc_mfa_acr",
                list(file.oidc_mfa_acr.take()),
                "MEDPORT_OIDC_MFA_ACR",
            ),
            link_by_email: pick(
                "oidc_link_by_email",
                file.oidc_link_by_email.take().map(|b| b.to_string()),
                "MEDPORT_OIDC_LINK_BY_EMAIL",
            ),
            clock_skew: pick(
                "oidc_clock_skew_seconds",
                file.oidc_clock_skew_seconds.take().map(|n| n.to_string()),
                "MEDPORT_OIDC_CLOCK_SKEW_SECONDS",
            ),
            label: pick("oidc_label", file.oidc_label.take(), "MEDPORT_OIDC_LABEL"),
            password_sign_in: pick(
                "password_sign_in",
                file.password_sign_in.take(),
                "MEDPORT_PASSWORD_SIGN_IN",
            ),
            break_glass: pick(
                "break_glass_emails",
                list(file.break_glass_emails.take()),
                "MEDPORT_BREAK_GLASS_EMAILS",
            ),
        }
    }

    pub(super) fn validate(&self, s: &mut Settings) -> Result<(), ConfigError> {
        s.password_sign_in = self.password_sign_in()?;
        let Some(issuer) = self.issuer.as_ref().filter(|v| !v.value.trim().is_empty()) else {
            let stray = [
                &self.client_id,
                &self.client_secret,
                &self.client_secret_file,
                &self.scopes,
                &self.roles_claim,
                &self.admin_values,
                &self.uploader_values,
                &self.auditor_values,
                &self.mfa_amr,
                &self.mfa_acr,
                &self.link_by_email,
                &self.clock_skew,
                &self.label,
            ];
            if let Some(v) = stray.into_iter().flatten().next() {
                return Err(ConfigError::new(
                    &v.origin,
                    "is only used with MEDPORT_OIDC_ISSUER, which is not set",
                ));
            }
            if matches!(s.password_sign_in, PasswordSignIn::BreakGlass(_))
                && let Some(v) = &self.password_sign_in
            {
                return Err(ConfigError::new(
                    &v.origin,
                    "`break-glass` needs single sign-on (MEDPORT_OIDC_ISSUER): nobody else could sign in",
                ));
            }
            return Ok(());
        };
        let issuer_url = parse_issuer(issuer)?;
        if s.public_url.is_none() {
            return Err(ConfigError::new(
                &issuer.origin,
                "single sign-on needs MEDPORT_PUBLIC_URL, from which the redirect URL is made",
            ));
        }
        let client_id = required(&self.client_id, "MEDPORT_OIDC_CLIENT_ID")?;
        let client_id = client_id.value.trim().to_string();
        let client_secret = self.client_secret()?;
        let scopes = match &self.scopes {
            Some(v) => values(v)
                .into_iter()
                .filter(|scope| scope != "openid")
                .collect(),
            None => vec!["email".into(), "profile".into()],
        };
        let roles_claim = self
            .roles_claim
            .as_ref()
            .map_or_else(|| "groups".to_string(), |v| v.value.trim().to_string());
        let roles = RoleMapping {
            admin: self.admin_values.as_ref().map(set).unwrap_or_default(),
            uploader: self.uploader_values.as_ref().map(set).unwrap_or_default(),
            auditor: self.auditor_values.as_ref().map(set).unwrap_or_default(),
        };
        if roles.admin.is_empty() && roles.uploader.is_empty() && roles.auditor.is_empty() {
            return Err(ConfigError::new(
                &issuer.origin,
                "set at least one of MEDPORT_OIDC_ADMIN_VALUES, MEDPORT_OIDC_UPLOADER_VALUES or MEDPORT_OIDC_AUDITOR_VALUES: without a role mapping nobody could sign in",
            ));
        }
        let mfa_amr = self.mfa_amr.as_ref().map_or_else(
            // RFC 8176 values that name a second factor or a phishing-resistant key.
            || {
                ["mfa", "otp", "hwk", "swk", "sms", "fpt", "face", "iris"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            },
            set,
        );
        let mfa_acr = self.mfa_acr.as_ref().map(set).unwrap_or_default();
        let link_by_email = match &self.link_by_email {
            Some(v) => super::buckets::parse_bool(v)?,
            None => false,
        };
        let clock_skew = match &self.clock_skew {
            Some(v) => Duration::from_secs(super::parse_in_range(v, 0, 300)?),
            None => Duration::from_secs(30),
        };
        let label = self
            .label
            .as_ref()
            .map(|v| v.value.trim().chars().take(60).collect::<String>())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "your organisation's account".into());
        s.oidc = Some(OidcSettings {
            issuer: issuer_url,
            client_id,
            client_secret,
            scopes,
            roles_claim,
            roles,
            mfa_amr,
            mfa_acr,
            link_by_email,
            clock_skew,
            label,
        });
        Ok(())
    }

    fn password_sign_in(&self) -> Result<PasswordSignIn, ConfigError> {
        let mode = self
            .password_sign_in
            .as_ref()
            .map(|v| (v, v.value.trim().to_ascii_lowercase()));
        match mode {
            None => {
                if let Some(v) = &self.break_glass {
                    return Err(ConfigError::new(
                        &v.origin,
                        "is only used with MEDPORT_PASSWORD_SIGN_IN=break-glass",
                    ));
                }
                Ok(PasswordSignIn::All)
            }
            Some((_, mode)) if mode == "all" => Ok(PasswordSignIn::All),
            Some((v, mode)) if mode == "break-glass" => {
                let raw = required(&self.break_glass, "MEDPORT_BREAK_GLASS_EMAILS")?;
                let emails = values(raw)
                    .iter()
                    .map(|e| {
                        Email::parse(e)
                            .map(|e| e.as_str().to_string())
                            .map_err(|_| {
                                ConfigError::new(
                                    &raw.origin,
                                    format!("`{e}` is not an email address"),
                                )
                            })
                    })
                    .collect::<Result<BTreeSet<_>, _>>()?;
                if emails.is_empty() {
                    return Err(ConfigError::new(
                        &v.origin,
                        "name at least one break-glass account in MEDPORT_BREAK_GLASS_EMAILS",
                    ));
                }
                Ok(PasswordSignIn::BreakGlass(emails))
            }
            Some((v, _)) => Err(ConfigError::new(
                &v.origin,
                "expected `all` or `break-glass`",
            )),
        }
    }

    fn client_secret(&self) -> Result<SecretString, ConfigError> {
        let file = self
            .client_secret_file
            .as_ref()
            .filter(|v| !v.value.trim().is_empty());
        let secret = match (&self.client_secret, file) {
            (Some(a), Some(_)) => {
                return Err(ConfigError::new(
                    &a.origin,
                    "set either MEDPORT_OIDC_CLIENT_SECRET or MEDPORT_OIDC_CLIENT_SECRET_FILE, not both",
                ));
            }
            (Some(v), None) => (v, v.value.trim().to_string()),
            (None, Some(v)) => {
                let path = PathBuf::from(v.value.trim());
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::new(&v.origin, format!("cannot read {} ({e})", path.display()))
                })?;
                (v, text.trim().to_string())
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "MEDPORT_OIDC_CLIENT_SECRET",
                    "is required with MEDPORT_OIDC_ISSUER (or MEDPORT_OIDC_CLIENT_SECRET_FILE)",
                ));
            }
        };
        let (origin, value) = secret;
        if value.is_empty() || value.len() > 1024 || value.chars().any(char::is_control) {
            // The value itself is never repeated.
            return Err(ConfigError::new(
                &origin.origin,
                "must be 1 to 1,024 printable characters",
            ));
        }
        Ok(SecretString::from(value))
    }
}

fn required<'a>(v: &'a Option<Val>, name: &str) -> Result<&'a Val, ConfigError> {
    v.as_ref()
        .filter(|v| !v.value.trim().is_empty())
        .ok_or_else(|| ConfigError::new(name, "is required with MEDPORT_OIDC_ISSUER"))
}

/// A comma- or space-separated list, empty items dropped.
fn values(v: &Val) -> Vec<String> {
    v.value
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn set(v: &Val) -> BTreeSet<String> {
    values(v).into_iter().collect()
}

/// `https`, or plain `http` on this machine only (a provider started beside medport).
fn parse_issuer(v: &Val) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(v.value.trim()).map_err(|_| {
        ConfigError::new(
            &v.origin,
            "expected a URL like https://login.example.org/realms/hospital",
        )
    })?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(ConfigError::new(
                &v.origin,
                "the issuer must use https (plain http only on this machine)",
            ));
        }
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(ConfigError::new(
            &v.origin,
            "the issuer must not contain credentials, a query or a fragment",
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(s: &str) -> Val {
        Val {
            value: s.into(),
            origin: "X".into(),
        }
    }

    #[test]
    fn the_first_role_in_order_admin_uploader_auditor_wins() {
        let m = RoleMapping {
            admin: set(&val("medport-admins")),
            uploader: set(&val("clinicians, radiology")),
            auditor: set(&val("audit")),
        };
        assert_eq!(m.role_for(["audit", "radiology"]), Some(Role::Uploader));
        assert_eq!(m.role_for(["audit", "medport-admins"]), Some(Role::Admin));
        assert_eq!(m.role_for(["audit"]), Some(Role::Auditor));
        assert_eq!(m.role_for(["Medport-Admins", "nurses"]), None);
        assert_eq!(m.role_for(std::iter::empty::<&str>()), None);
    }

    #[test]
    fn an_issuer_is_https_or_on_this_machine() {
        assert!(parse_issuer(&val("https://login.example.org/realms/h")).is_ok());
        assert!(parse_issuer(&val("http://127.0.0.1:9400")).is_ok());
        assert!(parse_issuer(&val("http://localhost:9400")).is_ok());
        assert!(parse_issuer(&val("http://login.example.org")).is_err());
        assert!(parse_issuer(&val("https://u:p@login.example.org")).is_err());
        assert!(parse_issuer(&val("ftp://login.example.org")).is_err());
        assert!(parse_issuer(&val("not a url")).is_err());
    }
}
