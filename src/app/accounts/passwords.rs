//! Password hashing (bcrypt). The common-password list is a password rule and lives with
//! the rules, in `domain::common_passwords`.
//!
//! Hashing uses the `bcrypt` crate's non-truncating functions: they refuse input that bcrypt
//! would silently cut, instead of hashing only its first 72 bytes. [`Password`] keeps new
//! passwords within that limit, so a refusal here means a sign-in attempt that cannot match.
//!
//! `hash`, `verify` and `burn_time` are deliberately slow, blocking CPU work (about a quarter
//! of a second each at cost 12). Callers run them on the blocking thread pool
//! (`tokio::task::spawn_blocking`), never on an async worker.
//!

use std::collections::HashMap;
use std::sync::{Condvar, LazyLock, Mutex, PoisonError};

use bcrypt::BcryptError;

use crate::domain::password::Password;

pub use crate::domain::common_passwords::is_common;

/// Hashing failed: a cost outside bcrypt's 4..=31, an input bcrypt cannot take whole, or the
/// system random generator (for the salt) failing. The message never contains the password.
#[derive(Debug, thiserror::Error)]
#[error("could not hash the password: {0}")]
pub struct PasswordHashError(#[from] BcryptError);

/// A bcrypt hash of `password` (`$2b$<cost>$...`, 60 characters) with a fresh salt.
/// Blocking: run on the blocking pool.
pub fn hash(password: &Password, cost: u32) -> Result<String, PasswordHashError> {
    Ok(BCRYPT.run(|| bcrypt::non_truncating_hash(password.expose(), cost))?)
}

/// Whether `candidate` matches `stored_hash`. Any error counts as "no": a candidate too long
/// to have been stored, or a stored hash that is not bcrypt (logged, as that means a broken
/// row). The comparison of hash outputs is constant-time. Blocking: run on the blocking pool.
pub fn verify(candidate: &Password, stored_hash: &str) -> bool {
    match BCRYPT.run(|| bcrypt::non_truncating_verify(candidate.expose(), stored_hash)) {
        Ok(matches) => matches,
        Err(BcryptError::Truncation(_)) => false,
        Err(error) => {
            tracing::warn!(%error, "a stored password hash could not be checked");
            false
        }
    }
}

/// Whether a stored hash was made with a different cost than the one configured now, so it
/// should be replaced (with `hash`) after the next successful sign-in.
pub fn needs_rehash(stored_hash: &str, cost: u32) -> bool {
    stored_hash
        .parse::<bcrypt::HashParts>()
        .map_or(true, |parts| parts.get_cost() != cost)
}

/// Spends the time of one `verify` at `cost` and discards the result. Sign-in calls this
/// when the email matches no user (or a disabled one), so the response time does not tell
/// an attacker which addresses have accounts. It goes through `verify` itself, so even the
/// fast refusal of an over-long candidate takes the same path as for a real user.
/// Blocking: run on the blocking pool.
pub fn burn_time(candidate: &Password, cost: u32) {
    if let Some(dummy) = dummy_hash(cost) {
        std::hint::black_box(verify(candidate, &dummy));
    }
}

/// Computes the dummy hash for `cost` ahead of the first unknown-user sign-in, which would
/// otherwise take twice as long as later ones. Optional; blocking.
pub fn warm_up(cost: u32) {
    let _ = dummy_hash(cost);
}

/// bcrypt runs at most on all cores but one. Each run is a quarter of a second of one core;
/// unbounded, a burst of sign-ins takes every core and every page waits behind them. Gated,
/// sign-ins queue among themselves and one core stays free for everything else. Known and
/// unknown addresses pass the same gate, so the timing stays equal.
static BCRYPT: LazyLock<Gate> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    Gate::new(cores.saturating_sub(1).max(1))
});

/// A counting semaphore for blocking threads (bcrypt already runs on the blocking pool).
struct Gate {
    busy: Mutex<usize>,
    freed: Condvar,
    limit: usize,
}

impl Gate {
    fn new(limit: usize) -> Self {
        Self {
            busy: Mutex::new(0),
            freed: Condvar::new(),
            limit,
        }
    }

    fn run<T>(&self, work: impl FnOnce() -> T) -> T {
        {
            // The counter is only ever changed by whole increments and decrements, so a
            // poisoned lock still holds a correct count.
            let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
            while *busy >= self.limit {
                busy = self
                    .freed
                    .wait(busy)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            *busy += 1;
        }
        // Released on the way out even if `work` panics.
        struct Release<'a>(&'a Gate);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                let mut busy = self.0.busy.lock().unwrap_or_else(PoisonError::into_inner);
                *busy = busy.saturating_sub(1);
                self.0.freed.notify_one();
            }
        }
        let _release = Release(self);
        work()
    }
}

/// Not a secret: nobody can sign in with it, as no account carries its hash.
const DUMMY_PASSWORD: &str = "medport timing equaliser, not a real password";

static DUMMY_HASHES: LazyLock<Mutex<HashMap<u32, String>>> = LazyLock::new(Default::default);

fn dummy_hash(cost: u32) -> Option<String> {
    // The lock only guards a get or an insert, which a panic cannot leave half done, so a
    // poisoned lock still holds a consistent map and is safe to keep using.
    let cached = DUMMY_HASHES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&cost)
        .cloned();
    if cached.is_some() {
        return cached;
    }
    // Hashed outside the lock so concurrent sign-ins are not queued behind it; two threads
    // may both compute the first hash for a cost, which is harmless.
    let fresh = match BCRYPT.run(|| bcrypt::non_truncating_hash(DUMMY_PASSWORD, cost)) {
        Ok(hash) => hash,
        Err(error) => {
            tracing::warn!(%error, cost, "could not make the dummy password hash");
            return None;
        }
    };
    let mut hashes = DUMMY_HASHES.lock().unwrap_or_else(PoisonError::into_inner);
    Some(hashes.entry(cost).or_insert(fresh).clone())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    const COST: u32 = 4;

    #[test]
    fn the_gate_lets_at_most_its_limit_run_at_once() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let gate = Arc::new(Gate::new(2));
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gate, now, most) = (gate.clone(), now.clone(), most.clone());
                std::thread::spawn(move || {
                    gate.run(|| {
                        let inside = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(inside, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        now.fetch_sub(1, Ordering::SeqCst);
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(*gate.busy.lock().unwrap(), 0);
    }

    #[test]
    fn hash_and_verify_round_trip() {
        let pw = Password::for_login("correct horse battery staple");
        let stored = hash(&pw, COST).unwrap();
        assert!(
            stored.starts_with("$2b$04$") && stored.len() == 60,
            "{stored}"
        );
        assert!(verify(&pw, &stored));
        assert!(!verify(
            &Password::for_login("correct horse battery stapler"),
            &stored
        ));
        assert!(!verify(&pw, "not a bcrypt hash"));
        // Salted: the same password never hashes the same way twice.
        assert_ne!(hash(&pw, COST).unwrap(), stored);
    }

    #[test]
    fn sign_in_normalises_like_sign_up() {
        let stored = hash(
            &Password::for_login("caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e"),
            COST,
        )
        .unwrap();
        assert!(verify(
            &Password::for_login("cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e"),
            &stored
        ));
    }

    #[test]
    fn over_long_candidates_are_false_not_errors() {
        let longest = Password::for_login(&"k".repeat(Password::MAX_BYTES));
        let stored = hash(&longest, COST).unwrap();
        assert!(verify(&longest, &stored));
        // Would match under a truncating bcrypt, since the first 72 bytes agree.
        let longer = Password::for_login(&format!("{}kk", "k".repeat(Password::MAX_BYTES)));
        assert!(!verify(&longer, &stored));
        assert!(hash(&longer, COST).is_err());
    }

    #[test]
    fn bcrypt_refuses_72_bytes_which_is_why_the_limit_is_71() {
        // If a future bcrypt release accepts 72 bytes, Password::MAX_BYTES may be raised.
        assert!(bcrypt::non_truncating_hash("a".repeat(71), COST).is_ok());
        assert!(matches!(
            bcrypt::non_truncating_hash("a".repeat(72), COST),
            Err(BcryptError::Truncation(_))
        ));
    }

    #[test]
    fn bad_cost_is_an_error() {
        let err = hash(&Password::for_login("whatever it is"), 3).unwrap_err();
        assert!(!err.to_string().contains("whatever"), "{err}");
    }

    #[test]
    fn rehash_when_cost_changes() {
        let stored = hash(&Password::for_login("a passphrase here"), COST).unwrap();
        assert!(!needs_rehash(&stored, COST));
        assert!(needs_rehash(&stored, 12));
        assert!(needs_rehash("garbage", COST));
    }

    #[test]
    fn burn_time_costs_about_one_verify() {
        let pw = Password::for_login("someone guessing");
        warm_up(COST);
        assert!(DUMMY_HASHES.lock().unwrap().contains_key(&COST));
        let stored = hash(&pw, COST).unwrap();
        let start = Instant::now();
        burn_time(&pw, COST);
        let burned = start.elapsed();
        // The fastest of a few runs, since a busy machine only ever adds time. The bound is
        // loose: it checks that real bcrypt work happens, not precise timing.
        let fastest_verify = (0..3)
            .map(|_| {
                let start = Instant::now();
                verify(&pw, &stored);
                start.elapsed()
            })
            .min()
            .unwrap();
        assert!(
            burned * 10 > fastest_verify,
            "{burned:?} vs {fastest_verify:?}"
        );
        burn_time(&pw, 99); // an impossible cost is logged, not a panic
    }
}
