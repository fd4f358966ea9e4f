//! `TestApp`: a real medport server on port 0 with its own database (a temp SQLite file, or
//! a fresh PostgreSQL database per test) and its own data directory.

mod actors;
mod audit;
mod database;
pub mod dicom;
pub mod dicomweb;
mod forms;
pub mod notifications;
pub mod oidc;
mod postgres;
mod process;
pub mod requests;

use std::path::PathBuf;
use std::sync::Arc;

use medport::config::{DatabaseSettings, Settings};
use medport::domain::clock::Clock;
use medport::infra::db::Database;
use medport::startup::{Application, BuildOptions, RouteHook};
use secrecy::SecretString;

pub use self::actors::{SignedIn, browser_signed_in, secret_from_page};
pub use self::forms::{csrf_token_at, extract_csrf};
pub use self::postgres::{CutProxy, PgTestDb, postgres_base_url};
pub use self::process::{medport, medport_command, medport_in, serve_with_log, spawn_until_ready};
pub use crate::common::s3::{S3Env, s3_client, s3_env};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `mod name { fn sqlite(); fn postgres(); }` for each `async fn name(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    )*};
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub db: Database,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub clock: Clock,
    handle: actix_web::dev::ServerHandle,
    /// The server's task; it ends once the server and its workers have stopped.
    running: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    // Dropped after the server is told to stop.
    _pg: Option<PgTestDb>,
    _proxy: Option<CutProxy>,
    _dir: tempfile::TempDir,
}

pub struct Options {
    pub tweak: Box<dyn FnOnce(&mut Settings) + Send>,
    pub hook: RouteHook,
    pub pg_through_proxy: bool,
}

impl Options {
    /// The shipped request limits, instead of the generous ones tests use by default.
    pub fn default_rate_limits() -> Self {
        Self {
            tweak: Box::new(|s| s.rate_limits = medport::config::RateLimits::default()),
            ..Self::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tweak: Box::new(|_| {}),
            hook: |_| {},
            pg_through_proxy: false,
        }
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::defaults_for(dir.path().join("data"));
        settings.bind = "127.0.0.1:0".parse().unwrap();
        settings.workers = Some(1);
        settings.db_pool_size = 4;
        settings.bcrypt_cost = 4;
        // Tests sign in many times from one address; the rate-limit tests set their own.
        settings.rate_limits.login_per_minute = 10_000;
        settings.rate_limits.login_burst = 10_000;
        settings.rate_limits.sensitive_per_minute = 10_000;
        settings.rate_limits.general_per_minute = 100_000;
        let (pg, proxy) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let pg = PgTestDb::create();
                let proxy = if options.pg_through_proxy {
                    let upstream = url::Url::parse(&postgres_base_url()).unwrap();
                    let up = format!(
                        "{}:{}",
                        upstream.host_str().unwrap(),
                        upstream.port().unwrap_or(5432)
                    );
                    Some(CutProxy::start(up).await)
                } else {
                    None
                };
                let url = pg.url_via(proxy.as_ref().map(|p| p.addr.as_str()));
                settings.database = DatabaseSettings::Postgres {
                    url: SecretString::from(url),
                };
                (Some(pg), proxy)
            }
        };
        (options.tweak)(&mut settings);
        let data_dir = settings.data_dir.clone();
        let database_url = match &settings.database {
            DatabaseSettings::Sqlite { path } => path.display().to_string(),
            DatabaseSettings::Postgres { url } => {
                secrecy::ExposeSecret::expose_secret(url).to_string()
            }
        };
        let clock = Clock::default();
        let app = Application::build_with(
            settings,
            BuildOptions {
                routes: options.hook,
                clock: clock.clone(),
            },
        )
        .await
        .expect("application starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let db = app.db().clone();
        let running = Some(tokio::spawn(app.run_until_stopped()));
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .build()
            .unwrap();
        Self {
            address,
            client,
            jar,
            db,
            data_dir,
            database_url,
            clock,
            handle,
            running,
            _pg: pg,
            _proxy: proxy,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_html(&self, path: &str) -> reqwest::Response {
        self.get_html_with(path, &[]).await
    }

    /// As `get_html`, with extra request headers.
    pub async fn get_html_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .client
            .get(self.url(path))
            .header("Accept", "text/html,application/xhtml+xml");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// A second browser: its own cookies, same server.
    pub fn new_browser(&self) -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
        Self::browser(reqwest::Client::builder())
    }

    /// A browser on another machine: its connections come from `source`, another loopback
    /// address such as `127.0.0.2`, so the server sees another client address.
    pub fn browser_from(&self, source: &str) -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
        Self::browser(reqwest::Client::builder().local_address(source.parse().ok()))
    }

    fn browser(builder: reqwest::ClientBuilder) -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .build()
            .unwrap();
        (client, jar)
    }

    /// The `Cookie` header this app's main browser would send.
    pub fn cookie_header(&self) -> String {
        use reqwest::cookie::CookieStore;
        self.jar
            .cookies(&self.address.parse().unwrap())
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    pub fn master_keyring(&self) -> medport::infra::crypto::secrets::Keyring {
        let text = std::fs::read_to_string(self.data_dir.join("master.key")).unwrap();
        let bytes: [u8; 32] = hex::decode(text.trim()).unwrap().try_into().unwrap();
        medport::infra::crypto::secrets::Keyring::new(Arc::new(
            medport::infra::crypto::keys::MasterKey::from_bytes(bytes),
        ))
    }

    /// Creates an account directly in the database (as `medport user create` would).
    pub fn create_user(&self, email: &str, role: &str, password: &str) -> String {
        use medport::app::accounts::{passwords, users};
        use medport::domain::{email::Email, password::Password, role::Role};
        let email = Email::parse(email).unwrap();
        let hash = passwords::hash(&Password::for_login(password), 4).unwrap();
        let mut conn = self.db.conn().unwrap();
        users::create(
            &mut conn,
            &users::NewUser {
                email: &email,
                role: Role::parse(role).unwrap(),
                password_hash: &hash,
                must_change_password: false,
            },
            chrono::Utc::now().naive_utc(),
        )
        .unwrap()
        .into_string()
    }

    /// Issues an API key for a user directly (as `medport apikey create` would); returns
    /// the whole key.
    pub fn create_api_key(&self, user_id: &str, scopes: &str) -> String {
        use medport::app::accounts::api_keys::{self, ChangedBy, KeyName, KeyRequest};
        use medport::domain::{api_key::Scopes, ids::UserId};
        let request = KeyRequest {
            name: KeyName::parse("test key").unwrap(),
            scopes: Scopes::parse_list(scopes).unwrap(),
            expires_in: None,
        };
        let mut conn = self.db.conn().unwrap();
        let key = api_keys::create(
            &mut conn,
            &UserId::parse(user_id).unwrap(),
            &request,
            chrono::Utc::now().naive_utc(),
            &ChangedBy::command_line(),
        )
        .unwrap();
        key.secret.expose().to_string()
    }

    pub fn proxy(&self) -> &CutProxy {
        self._proxy.as_ref().expect("spawned with pg_through_proxy")
    }

    pub fn sqlite_path(&self) -> PathBuf {
        PathBuf::from(&self.database_url)
    }
}

/// What a stopped app leaves behind for a server started on it later (a restart): its
/// database, data directory and master key.
pub struct Stopped {
    data_dir: PathBuf,
    database_url: String,
    _pg: Option<PgTestDb>,
    _dir: tempfile::TempDir,
}

impl Stopped {
    /// Settings tweak: a new server on this database, data directory and master key.
    pub fn reuse(&self) -> impl FnOnce(&mut Settings) + Send + 'static {
        on_data(self.data_dir.clone(), self.database_url.clone())
    }
}

/// Settings tweak: a server on an existing database, data directory and master key.
fn on_data(data_dir: PathBuf, database_url: String) -> impl FnOnce(&mut Settings) + Send + 'static {
    move |s| {
        s.master_key = medport::config::MasterKeySource::DataDir(data_dir.join("master.key"));
        s.data_dir = data_dir;
        s.database = if database_url.starts_with("postgres") {
            DatabaseSettings::Postgres {
                url: SecretString::from(database_url),
            }
        } else {
            DatabaseSettings::Sqlite {
                path: PathBuf::from(database_url),
            }
        };
    }
}

impl TestApp {
    /// Stops the server and waits until its background workers have ended, keeping the
    /// database and data directory for a restart (`Stopped::reuse`).
    pub async fn stop(mut self) -> Stopped {
        self.handle.stop(true).await;
        if let Some(running) = self.running.take() {
            running.await.unwrap().unwrap();
        }
        Stopped {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            _pg: self._pg.take(),
            _dir: std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap()),
        }
    }

    /// Settings tweak: a second server on this app's database, data directory and key.
    pub fn share_data(&self) -> impl FnOnce(&mut Settings) + Send + 'static {
        on_data(self.data_dir.clone(), self.database_url.clone())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command now; workers wind down in the background.
        drop(self.handle.stop(false));
    }
}

/// A request from a script: no cookies, just the bearer header.
pub async fn api_get(app: &TestApp, path: &str, key: &str) -> reqwest::Response {
    api_get_accepting(app, path, key, None).await
}

/// GET with an API key and, when given, an `Accept` header.
pub async fn api_get_accepting(
    app: &TestApp,
    path: &str,
    key: &str,
    accept: Option<&str>,
) -> reqwest::Response {
    let (client, _) = app.new_browser();
    let mut req = client
        .get(app.url(path))
        .header("Authorization", format!("Bearer {key}"));
    if let Some(accept) = accept {
        req = req.header("Accept", accept);
    }
    req.send().await.unwrap()
}

/// A request from a script with `method`, without a body.
pub async fn api_send(app: &TestApp, method: &str, path: &str, key: &str) -> reqwest::Response {
    let (client, _) = app.new_browser();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    client
        .request(method, app.url(path))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap()
}

/// An API error answer: asserts `status` and the JSON shape every API error has
/// (`error`, a snake_case code, and `message`, a sentence); returns the body.
pub async fn api_error(res: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(res.status(), status, "{}", res.url());
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(content_type, "application/json", "{}", res.url());
    let body: serde_json::Value = res.json().await.unwrap();
    let code = body["error"].as_str().unwrap_or_default();
    assert!(
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| m.ends_with('.')),
        "{body}"
    );
    body
}

/// Reads with `read` every 50 ms until `done` holds or `secs` have passed; the last reading.
pub async fn wait_until<T>(secs: u64, mut read: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let value = read();
        if done(&value) || std::time::Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// An address on 127.0.0.1 where nothing listens (bound, then released): a server that is down.
pub fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    addr
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}
