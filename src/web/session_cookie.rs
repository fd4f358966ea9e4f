//! The session cookie: its name, flags and signing key, and the session middleware.

use actix_session::SessionMiddleware;
use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_web::HttpRequest;
use actix_web::cookie::{CookieJar, Key, SameSite};
use sha2::{Digest, Sha512};

use crate::config::Settings;
use crate::domain::clock::Clock;
use crate::infra::crypto::keys::MasterKey;
use crate::infra::db::Database;
use crate::web::session_store::DbSessionStore;

/// The session cookie and the key that signs it. Over https the `__Host-` prefix makes the
/// browser insist on Secure, Path=/ and no Domain, so a sibling host cannot plant it.
#[derive(Clone)]
pub struct SessionCookie {
    pub name: &'static str,
    pub secure: bool,
    key: Key,
}

impl SessionCookie {
    pub fn new(settings: &Settings, master_key: &MasterKey) -> Self {
        let secure = settings.public_url.as_ref().is_some_and(|u| u.is_https());
        // A separate key for cookie signatures, derived one-way from the master key.
        let derived = Sha512::new()
            .chain_update(b"medport cookie signing key v1\0")
            .chain_update(master_key.expose())
            .finalize();
        Self {
            name: if secure {
                "__Host-medport_session"
            } else {
                "medport_session"
            },
            secure,
            key: Key::from(derived.as_slice()),
        }
    }

    /// The session id the browser presented, after checking the cookie's signature.
    pub fn session_key(&self, req: &HttpRequest) -> Option<String> {
        let cookie = req.cookie(self.name)?;
        let mut jar = CookieJar::new();
        jar.add_original(cookie);
        jar.signed(&self.key)
            .get(self.name)
            .map(|c| c.value().to_string())
    }

    /// The stored form (SHA-256) of this request's session id.
    pub fn session_hash(&self, req: &HttpRequest) -> Option<String> {
        self.session_key(req)
            .map(|k| crate::web::session_store::hash_session_key(&k))
    }

    pub fn middleware(
        &self,
        db: Database,
        clock: Clock,
        settings: &Settings,
    ) -> SessionMiddleware<DbSessionStore> {
        let store = DbSessionStore::new(db, clock, &settings.session);
        SessionMiddleware::builder(store, self.key.clone())
            .cookie_name(self.name.to_string())
            .cookie_secure(self.secure)
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Strict)
            .cookie_path("/".to_string())
            .cookie_domain(None)
            .cookie_content_security(CookieContentSecurity::Signed)
            // A browser-session cookie (gone when the browser closes); the server enforces
            // the idle and absolute limits itself.
            .session_lifecycle(BrowserSession::default())
            .build()
    }
}
