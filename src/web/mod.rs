//! Everything HTTP: middleware (security headers, request ids, error pages, rate limits,
//! sessions, CSRF), extractors that say who is asking, routes, views and static assets.

pub mod api_principal;
pub mod assets;
pub mod body_timeout;
pub mod bucket_form;
pub mod client;
pub mod csrf;
pub mod device;
pub mod download;
pub mod error;
pub mod error_pages;
pub mod extractors;
pub mod rate_limit;
pub mod request_body;
pub mod request_metrics;
pub mod request_span;
pub mod respond;
pub mod routes;
pub mod security_headers;
pub mod sender;
pub mod session;
pub mod session_cookie;
pub mod session_store;
pub mod timestamp;
pub mod uploader;
pub mod views;
