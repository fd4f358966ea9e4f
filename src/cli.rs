//! Command line: `medport` alone serves; the other commands manage the installation.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Settings};
use crate::startup::{Application, Core};
use crate::{audit, telemetry};

#[derive(Debug, Parser)]
#[command(name = "medport", version, about = "Secure medical file upload portal")]
pub struct Cli {
    /// Configuration file (default: ./medport.toml when it exists).
    #[arg(long, global = true, env = "MEDPORT_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exit code 1 and the first broken event when it is broken.
    Verify,
}

/// Exit codes: 0 ok, 1 failure, 2 bad configuration.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("medport: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => blocking(move || migrate(settings)).await,
        Command::Audit {
            command: AuditCommand::Verify,
        } => blocking(move || audit_verify(settings)).await,
    }
}

async fn blocking(f: impl FnOnce() -> ExitCode + Send + 'static) -> ExitCode {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(ExitCode::FAILURE)
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("medport: {e}");
    ExitCode::FAILURE
}

async fn serve(settings: Settings) -> ExitCode {
    let started = std::time::Instant::now();
    for (key, value) in config::describe(&settings) {
        tracing::debug!(%key, %value, "setting");
    }
    let backend = settings.database.backend_name();
    let bind = settings.bind;
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    let host = if bind.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        bind.ip().to_string()
    };
    tracing::info!(
        database = backend,
        startup_ms = started.elapsed().as_millis() as u64,
        "medport is ready on http://{host}:{}",
        app.port()
    );
    match app.run_until_stopped().await {
        Ok(()) => {
            tracing::info!("medport stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn migrate(settings: Settings) -> ExitCode {
    match Core::open(settings) {
        // Core::open applies the migrations; say so plainly for the operator.
        Ok(_) => {
            println!("database schema is up to date");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn audit_verify(settings: Settings) -> ExitCode {
    let core = match Core::open(settings) {
        Ok(core) => core,
        Err(e) => return fail(e),
    };
    let result = core
        .db
        .conn()
        .map_err(|e| e.to_string())
        .and_then(|mut conn| audit::verify(&mut conn).map_err(|e| e.to_string()));
    match result {
        Ok(v) => {
            println!("{v}");
            if v.broken.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => fail(e),
    }
}
