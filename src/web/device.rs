//! Device cookies, after OWASP's "Slow Down Online Guessing Attacks with Device Cookies".
//!
//! A browser that completes a sign-in to an account receives a signed cookie naming that
//! account (by a keyed tag, never the address itself) with a random device id. Its later
//! sign-in attempts to that account are throttled under the device's own entry, not the
//! account's: failures from anywhere else can then never keep a clinician out of their own
//! browser. Browsers without such a cookie (untrusted devices) share the account's throttle,
//! as before. A stolen cookie grants nothing but a throttle entry of its own, which guessing
//! through it fills like any other. One cookie holds up to `MAX_ACCOUNTS` accounts, for
//! workstations that several clinicians share.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use data_encoding::BASE64URL_NOPAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::app::error::AppError;
use crate::config::Settings;
use crate::infra::crypto::keys::MasterKey;

const MAX_ACCOUNTS: usize = 8;
const LIFETIME_DAYS: i64 = 180;
const NONCE_BYTES: usize = 16;
const TAG_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    nonce: String,
    tag: String,
}

/// The accounts a browser's valid device cookie names; empty when it has none (or a forged
/// or damaged one, which is simply ignored).
#[derive(Debug, Clone, Default)]
pub struct Devices {
    entries: Vec<Entry>,
    /// The cookie's signature: one identity per browser, for the sign-in rate limit.
    id: Option<String>,
}

impl Devices {
    /// An id for this browser when it holds a valid device cookie.
    pub fn browser_id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

#[derive(Clone)]
pub struct DeviceCookies {
    key: hmac::Key,
    name: &'static str,
    secure: bool,
}

impl DeviceCookies {
    pub fn new(settings: &Settings, master_key: &MasterKey) -> Self {
        let secure = settings.public_url.as_ref().is_some_and(|u| u.is_https());
        // A key of its own, derived one-way from the master key (every instance agrees).
        let derived = Sha512::new()
            .chain_update(b"medport device cookie key v1\0")
            .chain_update(master_key.expose())
            .finalize();
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &derived),
            name: if secure {
                "__Host-medport_device"
            } else {
                "medport_device"
            },
            secure,
        }
    }

    fn mac(&self, purpose: &str, data: &str) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(purpose.as_bytes());
        ctx.update(b"\0");
        ctx.update(data.as_bytes());
        ctx.sign().as_ref().to_vec()
    }

    /// The account's tag: who the entry is for, unreadable without the key.
    fn tag(&self, account_key: &str) -> String {
        BASE64URL_NOPAD.encode(&self.mac("account", account_key)[..TAG_BYTES])
    }

    /// The browser's device cookie, if it carries our signature.
    pub fn read(&self, req: &HttpRequest) -> Devices {
        req.cookie(self.name)
            .and_then(|c| self.parse(c.value()))
            .unwrap_or_default()
    }

    fn parse(&self, value: &str) -> Option<Devices> {
        let (body, signature) = value.rsplit_once('.')?;
        let signature = BASE64URL_NOPAD.decode(signature.as_bytes()).ok()?;
        if !bool::from(self.mac("cookie", body).ct_eq(&signature)) {
            return None;
        }
        let entries = body
            .split('~')
            .take(MAX_ACCOUNTS)
            .map(|e| {
                let (nonce, tag) = e.split_once(':')?;
                Some(Entry {
                    nonce: nonce.to_string(),
                    tag: tag.to_string(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Devices {
            entries,
            id: Some(BASE64URL_NOPAD.encode(&signature)),
        })
    }

    /// The throttle key of this browser for the account an attempt names (`account_key`, as
    /// `throttle::key_for_input` gives it), or `None` when the browser is not trusted for it.
    pub fn throttle_key(&self, devices: &Devices, account_key: &str) -> Option<String> {
        let tag = self.tag(account_key);
        devices
            .entries
            .iter()
            .find(|e| e.tag == tag)
            .map(|e| device_throttle_key(&e.nonce))
    }

    /// After a completed sign-in: the cookie with a fresh device id for this account, first,
    /// and the other accounts it already named.
    pub fn after_sign_in(
        &self,
        devices: &Devices,
        account_key: &str,
    ) -> Result<Cookie<'static>, AppError> {
        let mut nonce = [0u8; NONCE_BYTES];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| AppError::internal("system random number generator failed"))?;
        let tag = self.tag(account_key);
        let mut entries = vec![Entry {
            nonce: BASE64URL_NOPAD.encode(&nonce),
            tag: tag.clone(),
        }];
        entries.extend(
            devices
                .entries
                .iter()
                .filter(|e| e.tag != tag)
                .take(MAX_ACCOUNTS - 1)
                .cloned(),
        );
        let body = entries
            .iter()
            .map(|e| format!("{}:{}", e.nonce, e.tag))
            .collect::<Vec<_>>()
            .join("~");
        let signature = BASE64URL_NOPAD.encode(&self.mac("cookie", &body));
        Ok(Cookie::build(self.name, format!("{body}.{signature}"))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Strict)
            .max_age(CookieDuration::days(LIFETIME_DAYS))
            .finish())
    }
}

/// The throttle entry of one device for one account (stored like an account's entry).
fn device_throttle_key(nonce: &str) -> String {
    hex::encode(Sha256::digest(
        format!("medport-login-device\0{nonce}").as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn cookies(key_byte: u8) -> DeviceCookies {
        let settings = Settings::defaults_for("data");
        DeviceCookies::new(&settings, &MasterKey::from_bytes([key_byte; 32]))
    }

    fn presented(c: &DeviceCookies, cookie: &Cookie<'static>) -> Devices {
        let req = TestRequest::default()
            .cookie(Cookie::new(c.name, cookie.value().to_string()))
            .to_http_request();
        c.read(&req)
    }

    #[test]
    fn a_browser_that_signed_in_is_trusted_for_that_account_only() {
        let c = cookies(7);
        let issued = c.after_sign_in(&Devices::default(), "account-a").unwrap();
        let devices = presented(&c, &issued);
        assert!(c.throttle_key(&devices, "account-a").is_some());
        assert!(c.throttle_key(&devices, "account-b").is_none());
        assert!(devices.browser_id().is_some());
    }

    #[test]
    fn a_shared_browser_keeps_several_accounts_with_their_own_entries() {
        let c = cookies(7);
        let first = c.after_sign_in(&Devices::default(), "account-a").unwrap();
        let second = c
            .after_sign_in(&presented(&c, &first), "account-b")
            .unwrap();
        let devices = presented(&c, &second);
        let a = c.throttle_key(&devices, "account-a").unwrap();
        let b = c.throttle_key(&devices, "account-b").unwrap();
        assert_ne!(a, b);
        let mut devices = devices;
        for i in 0..20 {
            let next = c.after_sign_in(&devices, &format!("other-{i}")).unwrap();
            devices = presented(&c, &next);
        }
        assert!(
            c.throttle_key(&devices, "account-a").is_none(),
            "oldest dropped"
        );
        assert!(c.throttle_key(&devices, "other-19").is_some());
    }

    #[test]
    fn each_sign_in_gives_the_device_a_fresh_entry() {
        let c = cookies(7);
        let first = c.after_sign_in(&Devices::default(), "account-a").unwrap();
        let before = c.throttle_key(&presented(&c, &first), "account-a");
        let again = c
            .after_sign_in(&presented(&c, &first), "account-a")
            .unwrap();
        assert_ne!(c.throttle_key(&presented(&c, &again), "account-a"), before);
    }

    #[test]
    fn forged_or_foreign_cookies_are_ignored() {
        let c = cookies(7);
        let issued = c.after_sign_in(&Devices::default(), "account-a").unwrap();
        let other_server = cookies(8);
        assert!(
            other_server
                .throttle_key(&presented(&other_server, &issued), "account-a")
                .is_none()
        );
        let value = issued.value().to_string();
        let (body, sig) = value.rsplit_once('.').unwrap();
        for forged in [
            format!("{body}x.{sig}"),
            format!("{body}."),
            body.to_string(),
            String::new(),
        ] {
            let req = TestRequest::default()
                .cookie(Cookie::new(c.name, forged))
                .to_http_request();
            let devices = c.read(&req);
            assert!(c.throttle_key(&devices, "account-a").is_none());
            assert!(devices.browser_id().is_none());
        }
    }
}
