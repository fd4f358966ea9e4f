//! Server-side sessions for actix-session, kept in the `sessions` table. The cookie carries
//! a random 256-bit id; the table stores only its SHA-256, so a copy of the database cannot
//! be replayed as cookies. Idle and absolute expiry are enforced here, on the server, on
//! every load: a cookie that outlives its row is worthless.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use chrono::{NaiveDateTime, TimeDelta};
use data_encoding::BASE64URL_NOPAD;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::config::SessionSettings;
use crate::domain::clock::Clock;
use crate::infra::db::repo::sessions::{self, NewSession};
use crate::infra::db::{Database, DbError};

/// Session state keys with a meaning outside the handlers that set them.
pub mod keys {
    /// Messages shown once on the next page.
    pub const FLASH: &str = "flash";
    /// The signed-in user's id (set only after every sign-in step passed).
    pub const USER_ID: &str = "uid";
    /// Copied into the row for `/account/sessions`.
    pub const IP: &str = "ip";
    pub const USER_AGENT: &str = "ua";
    /// Set by the store when it ended a session for inactivity or age.
    pub const EXPIRED: &str = "expired";
    /// When the session began (unix seconds), carried across id renewals so a renewal
    /// does not restart the absolute lifetime. Cleared at sign-in.
    pub const CREATED: &str = "created_unix";
}

/// `last_seen_at` is written at most this often, not on every request.
const TOUCH_INTERVAL_SECS: i64 = 60;
/// Expired rows are swept at most this often.
const SWEEP_INTERVAL_SECS: i64 = 300;

#[derive(Clone)]
pub struct DbSessionStore {
    db: Database,
    clock: Clock,
    idle: TimeDelta,
    absolute: TimeDelta,
    last_sweep: Arc<AtomicI64>,
    /// Activity stamps being written in the background, by session: a request that follows
    /// at once reads the newer stamp from here rather than the row's older one.
    touching: Arc<Mutex<HashMap<String, NaiveDateTime>>>,
}

/// SHA-256 (hex) of a session cookie value: the only form the database ever sees.
pub fn hash_session_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

fn new_key() -> Result<String, anyhow::Error> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("system random number generator failed"))?;
    Ok(BASE64URL_NOPAD.encode(&bytes))
}

/// State values are JSON-encoded by actix-session; pull a plain string back out.
fn state_str(state: &HashMap<String, String>, key: &str) -> Option<String> {
    state
        .get(key)
        .and_then(|v| serde_json::from_str::<String>(v).ok())
}

fn truncate(s: Option<String>, max: usize) -> Option<String> {
    s.map(|mut s| {
        if s.len() > max {
            let mut cut = max;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
        s
    })
}

impl DbSessionStore {
    pub fn new(db: Database, clock: Clock, settings: &SessionSettings) -> Self {
        Self {
            db,
            clock,
            idle: to_delta(settings.idle_timeout),
            absolute: to_delta(settings.absolute_timeout),
            last_sweep: Arc::new(AtomicI64::new(0)),
            touching: Arc::default(),
        }
    }

    fn touching(&self) -> std::sync::MutexGuard<'_, HashMap<String, NaiveDateTime>> {
        self.touching.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn expires_at(&self, created: NaiveDateTime, last_seen: NaiveDateTime) -> NaiveDateTime {
        (last_seen + self.idle).min(created + self.absolute)
    }

    async fn insert(
        &self,
        mut state: HashMap<String, String>,
    ) -> Result<SessionKey, anyhow::Error> {
        let key = new_key()?;
        let id_hash = hash_session_key(&key);
        let now = self.clock.now_naive();
        let created = state
            .get(keys::CREATED)
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|t| t.naive_utc())
            .filter(|t| *t <= now)
            .unwrap_or(now);
        state.insert(
            keys::CREATED.to_string(),
            created.and_utc().timestamp().to_string(),
        );
        let expires_at = self.expires_at(created, now);
        let state_json = serde_json::to_string(&state)?;
        let user_id = state_str(&state, keys::USER_ID);
        let ip = truncate(state_str(&state, keys::IP), 64);
        let user_agent = truncate(state_str(&state, keys::USER_AGENT), 256);
        let sweep = self.sweep_due(now);
        self.db
            .run(move |conn| {
                if let Some(now) = sweep {
                    sessions::delete_expired(conn, now)?;
                }
                let new = NewSession {
                    id_hash,
                    user_id,
                    state: state_json,
                    ip,
                    user_agent,
                    created_at: created,
                    last_seen_at: now,
                    expires_at,
                };
                sessions::insert(conn, new)
            })
            .await?;
        Ok(SessionKey::try_from(key)?)
    }

    fn sweep_due(&self, now: NaiveDateTime) -> Option<NaiveDateTime> {
        let t = now.and_utc().timestamp();
        let last = self.last_sweep.load(Ordering::Relaxed);
        (t - last >= SWEEP_INTERVAL_SECS
            && self
                .last_sweep
                .compare_exchange(last, t, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok())
        .then_some(now)
    }
}

impl DbSessionStore {
    /// Records activity (at most once a minute per session) after the request, not while
    /// it waits: a read-only page then never waits for a write. Best effort: a full disk or
    /// a busy database must not sign the user out or fail a page; the next request touches
    /// the session again.
    fn touch_later(&self, id_hash: String, now: NaiveDateTime, expires_at: NaiveDateTime) {
        self.touching().insert(id_hash.clone(), now);
        let store = self.clone();
        tokio::spawn(async move {
            let key = id_hash.clone();
            let touched = store
                .db
                .run(move |conn| sessions::touch(conn, &key, now, expires_at))
                .await;
            if let Err(e) = touched {
                tracing::warn!(error = %e, "could not record session activity");
            }
            let mut touching = store.touching();
            if touching.get(&id_hash) == Some(&now) {
                touching.remove(&id_hash);
            }
        });
    }

    /// Whether the stored state and `new` differ only in one-time notices.
    async fn only_notices_differ(&self, id_hash: String, new: &HashMap<String, String>) -> bool {
        let stored = self
            .db
            .run(move |conn| sessions::state_of(conn, &id_hash))
            .await;
        let Ok(Ok(mut stored)) =
            stored.map(|s| serde_json::from_str::<HashMap<String, String>>(&s))
        else {
            return false;
        };
        let mut new = new.clone();
        for key in [keys::FLASH, keys::EXPIRED] {
            stored.remove(key);
            new.remove(key);
        }
        stored == new
    }
}

impl SessionStore for DbSessionStore {
    async fn load(
        &self,
        session_key: &SessionKey,
    ) -> Result<Option<HashMap<String, String>>, LoadError> {
        let id_hash = hash_session_key(session_key.as_ref());
        let now = self.clock.now_naive();
        let being_written = self.touching().get(&id_hash).copied();
        let store = self.clone();
        let row = self
            .db
            .run(move |conn| {
                let row = sessions::find_stored(conn, &id_hash)?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let last_seen = row
                    .last_seen_at
                    .max(being_written.unwrap_or(row.last_seen_at));
                let expired =
                    now >= last_seen + store.idle || now >= row.created_at + store.absolute;
                if expired {
                    sessions::delete(conn, &id_hash)?;
                    return Ok(Some(Err(())));
                }
                let touch = ((now - last_seen).num_seconds() >= TOUCH_INTERVAL_SECS)
                    .then(|| (id_hash, store.expires_at(row.created_at, now)));
                Ok::<_, DbError>(Some(Ok((row.state, touch))))
            })
            .await
            .map_err(|e| LoadError::Other(e.into()))?;
        let row = row.map(|loaded| {
            loaded.map(|(state, touch)| {
                if let Some((id_hash, expires_at)) = touch {
                    self.touch_later(id_hash, now, expires_at);
                }
                state
            })
        });
        match row {
            None => Ok(None),
            // Ended for inactivity or age: hand back a state that only says so, so the
            // sign-in page can explain why the user was signed out.
            Some(Err(())) => Ok(Some(HashMap::from([(
                keys::EXPIRED.to_string(),
                "true".to_string(),
            )]))),
            Some(Ok(state)) => serde_json::from_str(&state)
                .map(Some)
                .map_err(|e| LoadError::Deserialization(e.into())),
        }
    }

    async fn save(
        &self,
        session_state: HashMap<String, String>,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> Result<SessionKey, SaveError> {
        self.insert(session_state).await.map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        mut session_state: HashMap<String, String>,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> Result<SessionKey, UpdateError> {
        let id_hash = hash_session_key(session_key.as_ref());
        let state_json = serde_json::to_string(&session_state)
            .map_err(|e| UpdateError::Serialization(e.into()))?;
        let user_id = state_str(&session_state, keys::USER_ID);
        let ip = truncate(state_str(&session_state, keys::IP), 64);
        let user_agent = truncate(state_str(&session_state, keys::USER_AGENT), 256);
        let lookup = id_hash.clone();
        let updated = self
            .db
            .run(move |conn| {
                sessions::update_state(conn, &id_hash, state_json, user_id, ip, user_agent)
            })
            .await;
        let updated = match updated {
            Ok(n) => n,
            // A full disk: a change that only a page view made (a notice shown and so
            // removed, a notice added) may go unsaved, so pages keep answering; anything
            // else (who is signed in, a pending step) must fail loudly.
            Err(e) if e.is_full() && self.only_notices_differ(lookup, &session_state).await => {
                tracing::warn!(error = %e, "session notices not saved: the disk is full");
                return Ok(session_key);
            }
            Err(e) => return Err(UpdateError::Other(e.into())),
        };
        if updated == 1 {
            return Ok(session_key);
        }
        // The row was removed while the request ran (signed out elsewhere, revoked,
        // expired). Never bring a signed-in session back: keep only anonymous state.
        session_state.remove(keys::USER_ID);
        session_state.retain(|k, _| !k.starts_with("pending_"));
        self.insert(session_state).await.map_err(UpdateError::Other)
    }

    async fn update_ttl(
        &self,
        _session_key: &SessionKey,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> Result<(), anyhow::Error> {
        // Expiry is computed from created_at/last_seen_at in `load`.
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        let id_hash = hash_session_key(session_key.as_ref());
        self.db
            .run(move |conn| sessions::delete(conn, &id_hash))
            .await?;
        Ok(())
    }
}
