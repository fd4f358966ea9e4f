//! Command line: `medport` alone serves; the other commands manage the installation.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::accounts::api_keys::ChangedBy;
use crate::app::audit;
use crate::app::error::AppError;
use crate::config::{self, Settings};
use crate::infra::data_dir;
use crate::startup::{Application, Core};
use crate::telemetry;

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
    /// Master key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// User accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Sign-in sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// API keys for scripts.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Back up the database (SQLite: a consistent copy while the server runs), the master
    /// key with its older keys, and the local object store, with a manifest of SHA-256s.
    /// `backup verify DIR` checks one.
    #[command(args_conflicts_with_subcommands = true)]
    Backup {
        /// A new or empty directory; make it private storage, it holds the keys.
        #[arg(long, required = true)]
        to: Option<PathBuf>,
        #[command(subcommand)]
        command: Option<BackupCommand>,
    },
    /// Restore a backup into a new data directory (refuses one that is not empty).
    Restore {
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
        /// The new data directory (missing or empty).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Check the configuration and everything it points at: one line each, ✓ or ✗ with a
    /// fix. Exit code 1 when anything failed. Creates nothing; each bucket gets a test
    /// object that is written, read back and deleted.
    Check {
        /// Free space the data directory's disk must still have, in MiB.
        #[arg(long, default_value_t = crate::app::check::DEFAULT_MIN_FREE / (1024 * 1024))]
        min_free_mib: u64,
    },
    /// Abort unfinished uploads that have expired (the server does this on its own every
    /// `cleanup_interval_seconds`; this runs one pass now).
    Cleanup {
        /// Run one pass, print a one-line summary and exit.
        #[arg(long, required = true)]
        once: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Check a backup against its manifest; exit code 1 naming every file that differs.
    Verify {
        /// The backup directory.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create a key for an account and print it once (the only output on stdout).
    Create {
        #[arg(long)]
        email: String,
        /// Comma-separated: upload, read
        #[arg(long)]
        scope: String,
        /// What the key is for, shown in the owner's key list.
        #[arg(long, default_value = "created on the command line")]
        name: String,
        /// Days until the key stops working (1 to 365); no expiry when absent.
        #[arg(long)]
        expires_days: Option<u16>,
    },
    /// Revoke every API key not yet revoked (for a suspected compromise).
    RevokeAll {
        /// Only this account's keys.
        #[arg(long)]
        email: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// End every session, so every user must sign in again (for a suspected compromise).
    RevokeAll,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-seal every stored secret under a new master key (restart all instances after).
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (the first administrator comes from here).
    Create {
        #[arg(long)]
        email: String,
        /// admin, uploader or auditor
        #[arg(long)]
        role: String,
        /// Read the password from the first line of standard input (never from the
        /// command line, where other users could see it).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exit code 1 and the first broken event when it is broken.
    Verify,
}

/// Exit codes: 0 ok, 1 failure, 2 bad configuration.
pub async fn main() -> ExitCode {
    // Before anything is created: the data directory's files are this account's alone.
    data_dir::restrict_umask();
    let cli = Cli::parse();
    match &cli.command {
        // A bad setting or data directory is a finding here, not a refusal to run.
        Some(Command::Check { min_free_mib }) => {
            return check(cli.config.as_deref(), *min_free_mib).await;
        }
        // These read a backup, not the configured installation.
        Some(Command::Backup {
            command: Some(BackupCommand::Verify { dir }),
            ..
        }) => return backup_verify(dir),
        Some(Command::Restore { from, data_dir }) => return restore(from, data_dir),
        _ => {}
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("medport: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    // A data directory others may write to is refused like a bad setting.
    if let Err(e) = data_dir::check(&settings.data_dir) {
        eprintln!("medport: {e}");
        return ExitCode::from(2);
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => blocking(move || migrate(settings)).await,
        Command::Audit {
            command: AuditCommand::Verify,
        } => blocking(move || audit_verify(settings)).await,
        Command::Keys {
            command: KeysCommand::Rotate,
        } => blocking(move || keys_rotate(settings)).await,
        Command::User {
            command: UserCommand::Create { email, role, .. },
        } => blocking(move || user_create(settings, &email, &role)).await,
        Command::Apikey {
            command:
                ApikeyCommand::Create {
                    email,
                    scope,
                    name,
                    expires_days,
                },
        } => blocking(move || apikey_create(settings, &email, &scope, &name, expires_days)).await,
        Command::Apikey {
            command: ApikeyCommand::RevokeAll { email },
        } => blocking(move || apikey_revoke_all(settings, email.as_deref())).await,
        Command::Sessions {
            command: SessionsCommand::RevokeAll,
        } => blocking(move || sessions_revoke_all(settings)).await,
        Command::Cleanup { .. } => cleanup_once(settings).await,
        Command::Backup { to: Some(to), .. } => blocking(move || backup(settings, &to)).await,
        // Handled before the settings are read.
        Command::Check { .. } | Command::Backup { .. } | Command::Restore { .. } => {
            ExitCode::FAILURE
        }
    }
}

fn backup(settings: Settings, to: &std::path::Path) -> ExitCode {
    // No migration and no start-up writes: the backup reads the installation as it is.
    let db = match crate::infra::db::Database::open(&settings.database, 2) {
        Ok(db) => db,
        Err(e) => return fail(format!("cannot open the database: {e}")),
    };
    match crate::app::backup::backup(&settings, &db, to) {
        Ok(summary) => {
            println!("backup written to {}: {summary}", to.display());
            println!("it holds the master key: keep it as private as the server itself");
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("backup failed, nothing was kept: {e}")),
    }
}

fn backup_verify(dir: &std::path::Path) -> ExitCode {
    match crate::app::backup::verify(dir) {
        Ok(manifest) => {
            println!(
                "backup verified: {} (taken {})",
                manifest.summary(),
                manifest.created_at
            );
            ExitCode::SUCCESS
        }
        Err(crate::app::backup::BackupError::Damaged(problems)) => {
            for problem in problems {
                println!("✗ {problem}");
            }
            ExitCode::FAILURE
        }
        Err(e) => fail(e),
    }
}

fn restore(from: &std::path::Path, data_dir: &std::path::Path) -> ExitCode {
    match crate::app::backup::restore(from, data_dir) {
        Ok(summary) => {
            println!("restored into {}: {summary}", data_dir.display());
            println!(
                "start medport with MEDPORT_DATA_DIR={} (and, for SQLite, no DATABASE_URL)",
                data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("restore refused: {e}")),
    }
}

async fn check(config: Option<&std::path::Path>, min_free_mib: u64) -> ExitCode {
    use crate::app::check;
    let report = match Settings::load(config) {
        Ok(settings) => {
            let options = check::Options {
                min_free: min_free_mib.saturating_mul(1024 * 1024),
            };
            check::run(settings, &options).await
        }
        Err(e) => check::unreadable_configuration(&e.to_string()),
    };
    for finding in &report.findings {
        println!("{finding}");
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
    let create_admin = crate::app::accounts::first_run::create_admin_command(&settings);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    let needs_admin = app
        .db()
        .run(crate::app::accounts::first_run::needs_first_admin)
        .await;
    if let Ok(true) = needs_admin {
        tracing::warn!(
            "no administrator yet: create the first one on this machine, with this server's settings, by running `{create_admin}` (use your own email address; type the password on the next line)"
        );
    }
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

fn user_create(settings: Settings, email: &str, role: &str) -> ExitCode {
    use crate::app::accounts::{passwords, users};
    use crate::domain::email::Email;
    use crate::domain::password::{Password, PasswordPolicy};
    use crate::domain::role::Role;

    let email = match Email::parse(email) {
        Ok(e) => e,
        Err(e) => return fail(format!("--email {}", e.message)),
    };
    let role = match Role::parse(role) {
        Ok(r) => r,
        Err(e) => return fail(format!("--role {}", e.message)),
    };
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        return fail(format!("cannot read the password from standard input: {e}"));
    }
    let raw = line.trim_end_matches(['\r', '\n']);
    let password = match Password::parse_new(
        raw,
        &email,
        PasswordPolicy {
            totp_enabled: false,
        },
    ) {
        Ok(p) => p,
        Err(e) => return fail(format!("the password {}", e.message)),
    };
    let cost = settings.bcrypt_cost;
    let core = match Core::open(settings) {
        Ok(core) => core,
        Err(e) => return fail(e),
    };
    let hash = match passwords::hash(&password, cost) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let now = crate::domain::clock::Clock::default().now_naive();
    let created = core.db.conn().map_err(AppError::from).and_then(|mut conn| {
        crate::infra::db::write_tx(&mut conn, |conn| {
            let id = users::create(
                conn,
                &users::NewUser {
                    email: &email,
                    role,
                    password_hash: &hash,
                    must_change_password: false,
                },
                now,
            )
            .map_err(|e| match e {
                users::CreateUserError::EmailTaken => AppError::BadRequest(e.to_string()),
                users::CreateUserError::Db(e) => AppError::Db(e),
            })?;
            audit::record(
                conn,
                &audit::Event::new(
                    audit::Actor::system(),
                    "user.create",
                    audit::Outcome::Success,
                )
                .target("user", id.as_str())
                .details(serde_json::json!({
                    "email": email.as_str(), "role": role.as_str(), "via": "command line"
                })),
            )?;
            Ok::<_, AppError>(id)
        })
    });
    match created {
        Ok(id) => {
            println!("created {} {} ({})", role.as_str(), email.as_str(), id);
            ExitCode::SUCCESS
        }
        Err(AppError::BadRequest(msg)) => fail(msg),
        Err(e) => fail(e),
    }
}

fn apikey_create(
    settings: Settings,
    email: &str,
    scope: &str,
    name: &str,
    expires_days: Option<u16>,
) -> ExitCode {
    use crate::app::accounts::api_keys::{self, ExpiryDays, KeyName, KeyRequest};
    use crate::app::accounts::users;
    use crate::domain::api_key::Scopes;
    use crate::domain::email::Email;

    let email = match Email::parse(email) {
        Ok(e) => e,
        Err(e) => return fail(format!("--email {}", e.message)),
    };
    let scopes = match Scopes::parse_list(scope) {
        Ok(s) => s,
        Err(e) => return fail(format!("--scope {}", e.message)),
    };
    let name = match KeyName::parse(name) {
        Ok(n) => n,
        Err(e) => return fail(format!("--name {}", e.message)),
    };
    let expires_in = match expires_days.map(ExpiryDays::from_days) {
        None => None,
        Some(Some(days)) => Some(days),
        Some(None) => {
            return fail(format!(
                "--expires-days must be from 1 to {}",
                ExpiryDays::MAX
            ));
        }
    };
    let core = match Core::open(settings) {
        Ok(core) => core,
        Err(e) => return fail(e),
    };
    let request = KeyRequest {
        name,
        scopes,
        expires_in,
    };
    let by = ChangedBy::command_line();
    let now = crate::domain::clock::Clock::default().now_naive();
    let issued = core.db.conn().map_err(AppError::from).and_then(|mut conn| {
        let owner = match users::find_by_email(&mut conn, &email)? {
            Some(row) if !row.disabled => row.user_id(),
            Some(_) => return Err(AppError::BadRequest("this account is disabled".into())),
            None => return Err(AppError::BadRequest("no account has this email".into())),
        };
        api_keys::create(&mut conn, &owner, &request, now, &by)
    });
    match issued {
        Ok(key) => {
            // The only line on stdout, so scripts can capture it; it is never shown again.
            println!("{}", key.secret.expose());
            eprintln!(
                "created API key mp_{}_… for {} (scopes: {}); store it now, it will not be shown again",
                key.secret.prefix(),
                email.as_str(),
                key.scopes.to_db_string()
            );
            ExitCode::SUCCESS
        }
        Err(AppError::BadRequest(msg)) => fail(format!("--email {msg}")),
        Err(e) => fail(e),
    }
}

/// Revokes every API key, or every key of one account, and prints how many.
fn apikey_revoke_all(settings: Settings, email: Option<&str>) -> ExitCode {
    use crate::app::accounts::users;
    use crate::app::incident::api_keys::{self, KeyScope};
    use crate::domain::email::Email;

    let email = match email.map(Email::parse).transpose() {
        Ok(e) => e,
        Err(e) => return fail(format!("--email {}", e.message)),
    };
    let core = match Core::open(settings) {
        Ok(core) => core,
        Err(e) => return fail(e),
    };
    let now = crate::domain::clock::Clock::default().now_naive();
    let revoked = core.db.conn().map_err(AppError::from).and_then(|mut conn| {
        let scope = match &email {
            None => KeyScope::All,
            Some(email) => match users::find_by_email(&mut conn, email)? {
                Some(row) => KeyScope::Owner(row.user_id()),
                None => return Err(AppError::BadRequest("no account has this email".into())),
            },
        };
        api_keys::revoke_all(&mut conn, &scope, &ChangedBy::command_line(), now)
    });
    match revoked {
        Ok(revoked) => {
            match revoked.owner {
                Some(owner) => println!("api keys: {} revoked for {owner}", revoked.count),
                None => println!("api keys: {} revoked", revoked.count),
            }
            ExitCode::SUCCESS
        }
        Err(AppError::BadRequest(msg)) => fail(format!("--email {msg}")),
        Err(e) => fail(e),
    }
}

/// Ends every session and prints how many were live.
fn sessions_revoke_all(settings: Settings) -> ExitCode {
    let core = match Core::open(settings) {
        Ok(core) => core,
        Err(e) => return fail(e),
    };
    let now = crate::domain::clock::Clock::default().now_naive();
    let ended = core.db.conn().map_err(AppError::from).and_then(|mut conn| {
        crate::app::incident::sessions::end_all(&mut conn, None, &ChangedBy::command_line(), now)
    });
    match ended {
        Ok(count) => {
            println!("sessions: {count} ended");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// One cleanup pass against the configured database and buckets. Uploads whose storage
/// could not be cleaned are scheduled for retry, which is not a failure of the command.
async fn cleanup_once(settings: Settings) -> ExitCode {
    let core = match tokio::task::spawn_blocking(move || Core::open(settings)).await {
        Ok(Ok(core)) => core,
        Ok(Err(e)) => return fail(e),
        Err(e) => return fail(e),
    };
    let ctx = crate::app::uploads::UploadContext::new(
        core.db,
        core.settings,
        core.keyring,
        crate::domain::clock::Clock::default(),
    );
    match crate::app::uploads::cleanup::run_once(&ctx).await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn keys_rotate(settings: Settings) -> ExitCode {
    let source = settings.master_key.clone();
    let objects = settings.data_dir.join("objects");
    let core = match Core::open(settings) {
        Ok(core) => core,
        Err(e) => return fail(e),
    };
    let result = core.db.conn().map_err(AppError::from).and_then(|mut conn| {
        let report = crate::app::key_rotation::rotate(&mut conn, &source, core.master_key.clone())?;
        audit::record(
            &mut conn,
            &audit::Event::new(
                audit::Actor::system(),
                "keys.rotate",
                audit::Outcome::Success,
            )
            .details(serde_json::json!({
                "new_key_id": report.new_key_id,
                "totp_seeds": report.totp_seeds,
                "bucket_secrets": report.bucket_secrets,
                "patient_records": report.patient_records,
                "sender_records": report.sender_records,
                "webhook_secrets": report.webhook_secrets,
            })),
        )?;
        Ok(report)
    });
    let report = match result {
        Ok(report) => report,
        Err(AppError::BadRequest(msg)) => return fail(msg),
        Err(e) => return fail(e),
    };
    println!("{report}");
    // Object data keys of the local store are sealed too: re-wrap them under the new key.
    // Only small metadata files are rewritten; if this step stops, those objects still open
    // with the previous key, which stays on disk.
    if objects.exists() {
        let moved = crate::app::key_rotation::reseal_local_objects(&source, objects);
        match moved {
            Ok(n) => println!("re-sealed the data keys of {n} stored objects and uploads"),
            Err(e) => {
                return fail(format!(
                    "object data keys were not all moved yet (they still open with the previous key; run the rotation again): {e}"
                ));
            }
        }
    }
    println!("restart every medport instance so they seal new data with the new key");
    ExitCode::SUCCESS
}
