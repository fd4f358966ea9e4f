//! Accounts: users, passwords, sign-in throttling, TOTP and recovery codes, API keys, and
//! what administrators change about other accounts.

pub mod api_keys;
pub mod first_run;
pub mod password_change;
pub mod passwords;
pub mod recovery_codes;
pub mod second_factor;
pub mod sessions;
pub mod single_sign_on;
pub mod throttle;
pub mod totp;
pub mod totp_changes;
pub mod user_admin;
pub mod users;

use crate::app::audit::{Actor, Origin};
use crate::domain::ids::UserId;

/// An administrator making a change: their id (for the rules about one's own account) and
/// how the audit trail names them and where they were. The web layer builds it from its
/// `Admin` extractor, which has checked the role and TOTP.
#[derive(Debug, Clone)]
pub struct ActingAdmin {
    pub id: UserId,
    pub actor: Actor,
    pub origin: Origin,
}
