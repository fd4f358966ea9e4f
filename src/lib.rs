//! medport: a self-hosted portal where clinicians upload medical files into storage that
//! administrators manage. See DESIGN.md in the project's shared notes for the architecture.

pub mod audit;
pub mod auth;
pub mod buckets;
pub mod cli;
pub mod clock;
pub mod config;
pub mod data_dir;
pub mod db;
pub mod domain;
pub mod error;
pub mod incident;
pub mod key_rotation;
pub mod keys;
pub mod routes;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod uploads;
pub mod views;
pub mod web;
