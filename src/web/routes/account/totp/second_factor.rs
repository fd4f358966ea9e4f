//! Checking a second factor for a change to the account (the check itself is
//! `app::accounts::totp_changes`): building it for the signed-in user, and the answer to a
//! refusal.

use chrono::NaiveDateTime;

use crate::app::accounts::totp_changes::Owner;
pub(super) use crate::app::accounts::totp_changes::{Refusal, SecondFactorCheck, WRONG_CODE};
use crate::infra::crypto::secrets::Keyring;
use crate::web::extractors::CurrentUser;
use crate::web::routes::account::Refused;

/// The signed-in user as the account's owner.
pub(super) fn owner(user: &CurrentUser) -> Owner {
    Owner {
        id: user.id.clone(),
        email: user.email.clone(),
        actor: user.actor(),
        origin: user.origin(),
    }
}

/// A current TOTP code, or a recovery code where `accept_recovery_code`, for `user`.
pub(super) fn check(
    user: &CurrentUser,
    keyring: &Keyring,
    code: String,
    unix: i64,
    now: NaiveDateTime,
    accept_recovery_code: bool,
) -> SecondFactorCheck {
    SecondFactorCheck::new(&owner(user), keyring, code, unix, now, accept_recovery_code)
}

/// The status a refusal is answered with.
pub(super) fn answer(refusal: Refusal, now: NaiveDateTime) -> Refused {
    match refusal {
        Refusal::Throttled(until) => Refused::Throttled { until, now },
        Refusal::WrongCode | Refusal::ReplayedCode => Refused::Invalid,
    }
}
