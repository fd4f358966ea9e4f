//! HTTP-level tests. One test binary (one link step) with a module per capability; every
//! test that touches the database runs on SQLite and on PostgreSQL (`both_backends!`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
mod helpers;
mod tus_support;

mod abuse;
mod access;
mod account;
mod admin_users;
mod api_keys;
mod audit;
mod audit_viewer;
mod auth;
mod backup;
mod buckets;
mod check_cli;
mod cleanup;
mod config_cli;
mod data_dir;
mod dicom_upload;
mod dicomweb;
mod downloads;
mod errors;
mod first_run;
mod get_writes;
mod hardening;
mod headers;
mod health;
mod incident;
mod keys;
mod metrics;
mod migrations;
mod notifications;
mod pool;
mod scan;
mod scanning;
mod single_sign_on;
mod studies;
mod tus;
mod tus_js_client;
mod upload_pages;
mod upload_requests;
mod uploads_api;
