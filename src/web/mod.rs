//! Cross-cutting HTTP layers: security headers, error pages, static assets.

pub mod assets;
pub mod client;
pub mod error_pages;
pub mod rate_limit;
pub mod request_body;
pub mod request_span;
pub mod respond;
pub mod security_headers;
pub mod timestamp;
