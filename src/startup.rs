//! Builds the application from settings: data directory, master key, database (migrated),
//! then an HTTP server bound to its listener. Tests build it with port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::domain::clock::Clock;
use crate::infra::crypto::keys::{KeyError, MasterKey};
use crate::infra::crypto::secrets::Keyring;
use crate::infra::data_dir::{self, DataDirError};
use crate::infra::db::{Database, DbError};
use crate::web::assets::AssetTable;
use crate::web::csrf::csrf_protect;
use crate::web::error_pages::error_pages;
use crate::web::rate_limit::{Limiters, rate_limit};
use crate::web::routes;
use crate::web::security_headers::{HeaderPolicy, security_headers};
use crate::web::session_cookie::SessionCookie;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot open the database: {0}")]
    Database(DbError),
    #[error("cannot apply database migrations: {0}")]
    Migration(DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("start-up task failed: {0}")]
    Task(String),
}

/// Extra routes mounted beside the real ones; tests use it to force failures.
pub type RouteHook = fn(&mut web::ServiceConfig);

/// What tests may change about a build: extra routes and a clock they can move.
#[derive(Clone)]
pub struct BuildOptions {
    pub routes: RouteHook,
    pub clock: Clock,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            routes: |_| {},
            clock: Clock::default(),
        }
    }
}

/// Opens the data directory, master key and database, and applies migrations. Shared by
/// `serve` and the CLI commands.
pub struct Core {
    pub settings: Arc<Settings>,
    pub db: Database,
    pub master_key: Arc<MasterKey>,
    /// The master key plus older keys that may still open data sealed before a rotation.
    pub keyring: Arc<Keyring>,
}

impl Core {
    pub fn open(settings: Settings) -> Result<Self, StartupError> {
        data_dir::prepare(&settings.data_dir)?;
        let master_key = Arc::new(MasterKey::load_or_create(&settings.master_key)?);
        let keyring = crate::app::key_rotation::keyring(master_key.clone(), &settings.master_key)
            .map_err(|e| StartupError::Task(e.to_string()))?;
        let db = Database::open(&settings.database, settings.db_pool_size)
            .map_err(StartupError::Database)?;
        let applied = db.migrate().map_err(StartupError::Migration)?;
        // The system default bucket's row follows the configuration (local store or S3).
        db.conn()
            .map_err(crate::app::buckets::SystemBucketError::from)
            .and_then(|mut conn| {
                crate::app::buckets::ensure_system_bucket(
                    &mut conn,
                    &settings,
                    chrono::Utc::now().naive_utc(),
                )
            })
            .map_err(|e| {
                StartupError::Task(format!("cannot set up the system default bucket: {e}"))
            })?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "applied database migrations");
        }
        Ok(Self {
            settings: Arc::new(settings),
            db,
            master_key,
            keyring: Arc::new(keyring),
        })
    }
}

pub struct Application {
    port: u16,
    server: Server,
    db: Database,
    /// Background work that ends with the server: the notification worker.
    workers: Workers,
}

/// Background tasks stopped when the server stops, so a stopped server (a test's restart,
/// or a graceful shutdown) sends nothing more.
struct Workers {
    stop: tokio_util::sync::CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with(settings, BuildOptions::default()).await
    }

    pub async fn build_with(
        settings: Settings,
        options: BuildOptions,
    ) -> Result<Self, StartupError> {
        // Opening and migrating the database blocks: keep it off the async threads.
        let core = tokio::task::spawn_blocking(move || Core::open(settings))
            .await
            .map_err(|e| StartupError::Task(e.to_string()))??;
        let addr = core.settings.bind;
        let listener = TcpListener::bind(addr).map_err(|source| StartupError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: addr.to_string(),
                source,
            })?
            .port();
        let db = core.db.clone();
        // The dummy hash that unknown-user sign-ins verify against costs one bcrypt run:
        // build it in the background so readiness does not wait for it.
        let cost = core.settings.bcrypt_cost;
        std::thread::spawn(move || crate::app::accounts::passwords::warm_up(cost));
        let stop = tokio_util::sync::CancellationToken::new();
        let (server, tasks) = run(listener, core, options, &stop)?;
        Ok(Self {
            port,
            server,
            db,
            workers: Workers { stop, tasks },
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests; signals are handled by the server itself).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The application's own database handle (tests assert on stored rows through it).
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Serves until the server is stopped, then stops the background workers and waits
    /// for the pass each may be in the middle of.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.workers.stop.cancel();
        for task in self.workers.tasks {
            let _ = task.await;
        }
        served
    }
}

type Tasks = Vec<tokio::task::JoinHandle<()>>;

fn run(
    listener: TcpListener,
    core: Core,
    options: BuildOptions,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<(Server, Tasks), StartupError> {
    let addr = listener.local_addr().ok();
    let workers = core.settings.workers;
    let limiters =
        web::Data::new(Limiters::new(&core.settings.rate_limits).map_err(StartupError::Task)?);
    let cookie = SessionCookie::new(&core.settings, &core.master_key);
    let devices = web::Data::new(crate::web::device::DeviceCookies::new(
        &core.settings,
        &core.master_key,
    ));
    let keyring = web::Data::from(core.keyring.clone());
    let clock = web::Data::new(options.clock.clone());
    let hook = options.routes;
    let policy = web::Data::new(HeaderPolicy {
        hsts: core
            .settings
            .public_url
            .as_ref()
            .is_some_and(|u| u.is_https()),
    });
    let upload_ctx = crate::app::uploads::UploadContext::new(
        core.db.clone(),
        core.settings.clone(),
        core.keyring.clone(),
        options.clock.clone(),
    );
    crate::app::uploads::cleanup::spawn_worker(upload_ctx.clone());
    let notifier = crate::app::notifications::Notifier::new(
        &core.settings,
        core.db.clone(),
        core.keyring.clone(),
        options.clock.clone(),
    )
    .map_err(|e| StartupError::Task(format!("notifications: {e}")))?;
    let tasks: Tasks = crate::app::notifications::spawn_worker(Arc::new(notifier), stop.clone())
        .into_iter()
        .collect();
    let provider = single_sign_on(&core.settings)?;
    let refusals = web::Data::new(crate::app::audit::refusals::Refusals::new());
    crate::app::audit::refusals::spawn_ticker(
        core.db.clone(),
        refusals.clone().into_inner(),
        options.clock.clone(),
    );
    let upload_ctx = web::Data::new(upload_ctx);
    let session_db = core.db.clone();
    let session_settings = core.settings.clone();
    let db = web::Data::new(core.db);
    let settings = web::Data::from(core.settings);
    let master_key = web::Data::from(core.master_key);
    let assets = web::Data::new(AssetTable::new());
    let server = HttpServer::new(move || {
        App::new()
            // The last `wrap` runs first: security headers outermost, so every response,
            // even an error from any inner layer, gets them; then the request id; then the
            // request metrics, which see every final status; then error pages, which show
            // that id; then the session, the rate limit (which
            // needs the session to count a signed-in user per account), body deadlines
            // and limits, and the CSRF check, which needs the session.
            .wrap(from_fn(csrf_protect))
            .wrap(from_fn(crate::web::request_body::request_body))
            .wrap(from_fn(rate_limit))
            .wrap(cookie.middleware(session_db.clone(), options.clock.clone(), &session_settings))
            .wrap(from_fn(error_pages))
            .wrap(from_fn(crate::web::request_metrics::request_metrics))
            .wrap(TracingLogger::<crate::web::request_span::RequestSpan>::new())
            .wrap(from_fn(security_headers))
            .app_data(policy.clone())
            .app_data(db.clone())
            .app_data(settings.clone())
            .app_data(master_key.clone())
            .app_data(assets.clone())
            .app_data(keyring.clone())
            .app_data(clock.clone())
            .app_data(upload_ctx.clone())
            .app_data(web::Data::new(cookie.clone()))
            .app_data(web::FormConfig::default().limit(64 * 1024))
            .app_data(web::PayloadConfig::default().limit(64 * 1024))
            .app_data(limiters.clone())
            .app_data(refusals.clone())
            .app_data(devices.clone())
            .configure(|cfg| {
                if let Some(provider) = &provider {
                    cfg.app_data(provider.clone());
                }
            })
            .configure(routes::configure)
            .configure(hook)
            .default_service(web::to(routes::not_found))
    })
    // Slow clients cannot hold a worker: headers must arrive within 10 s.
    .client_request_timeout(Duration::from_secs(10))
    // That deadline covers only the first request of a connection: a kept-alive connection
    // could trickle its next request's headers forever. One request per connection.
    .keep_alive(actix_web::http::KeepAlive::Disabled)
    .client_disconnect_timeout(Duration::from_secs(5))
    .shutdown_timeout(30);
    let server = match workers {
        Some(n) => server.workers(n),
        None => server,
    };
    let server = server
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: addr.map(|a| a.to_string()).unwrap_or_default(),
            source,
        })?
        .run();
    Ok((server, tasks))
}

/// The OpenID Provider, when single sign-on is set up. Discovery runs once in the
/// background so that a provider that is down shows in the log at start; sign-in retries it.
fn single_sign_on(
    settings: &crate::config::Settings,
) -> Result<Option<web::Data<crate::app::accounts::single_sign_on::Provider>>, StartupError> {
    let (Some(oidc), Some(public)) = (&settings.oidc, &settings.public_url) else {
        return Ok(None);
    };
    let provider =
        crate::app::accounts::single_sign_on::Provider::new(oidc.clone(), public.as_str())
            .map_err(|e| StartupError::Task(format!("single sign-on: {e}")))?;
    let provider = web::Data::new(provider);
    let probe = provider.clone();
    // Its own thread and runtime: the provider's HTTP futures are not `Send`.
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        match runtime.block_on(probe.probe()) {
            Ok(found) => tracing::info!(%found, "single sign-on ready"),
            Err(e) => tracing::warn!(
                error = %e,
                "single sign-on: the provider is not available yet; sign-in will retry"
            ),
        }
    });
    Ok(Some(provider))
}
