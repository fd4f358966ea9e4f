//! Controls that an outside attack pass found missing, each shown failing its attack: the
//! audit trail cannot be flooded by anonymous clients, failures from elsewhere cannot keep a
//! user out of a browser they signed in with before, an administrator's password alone opens
//! nothing, forwarded headers count only from trusted proxies, and request limits follow
//! the account so that one hospital NAT address is not one client.

mod account_limits;
mod admin_without_totp;
mod audit_flood;
mod device_cookies;
mod forwarded_headers;
