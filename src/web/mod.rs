//! Cross-cutting HTTP layers: security headers, error pages, static assets.

pub mod assets;
pub mod error_pages;
pub mod security_headers;
