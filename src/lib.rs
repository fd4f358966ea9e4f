//! medport: a self-hosted portal where clinicians upload medical files into storage that
//! administrators manage.
//!
//! Layers, each depending only on those before it (`tests/layering.rs` enforces it):
//! `domain` (validated values, no I/O) <- `config` <- `infra` (database, storage, crypto,
//! clamd) <- `app` (accounts, buckets, uploads, audit; no actix) <- `web` (routes, views,
//! middleware, extractors) <- `startup` / `cli`.

pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod infra;
pub mod startup;
pub mod telemetry;
pub mod web;
