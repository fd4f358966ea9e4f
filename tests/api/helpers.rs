//! `TestApp`: a real medport server on port 0 with its own database (a temp SQLite file, or
//! a fresh PostgreSQL database per test) and its own data directory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use diesel::{Connection, PgConnection, RunQueryDsl};
use medport::config::{DatabaseSettings, Settings};
use medport::db::Database;
use medport::startup::{Application, RouteHook};
use secrecy::SecretString;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

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

pub fn postgres_base_url() -> String {
    std::env::var("MEDPORT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty PostgreSQL database, dropped (with its connections) at the end.
pub struct PgTestDb {
    pub name: String,
    admin_url: String,
}

impl PgTestDb {
    pub fn create() -> Self {
        let admin_url = postgres_base_url();
        let name = format!("medport_t_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::establish(&admin_url).expect(
            "PostgreSQL must answer at MEDPORT_TEST_POSTGRES (run scripts/test-services.sh)",
        );
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .unwrap();
        Self { name, admin_url }
    }

    /// The URL of this database, optionally through another host:port (a proxy).
    pub fn url_via(&self, host_port: Option<&str>) -> String {
        let mut url = url::Url::parse(&self.admin_url).unwrap();
        url.set_path(&format!("/{}", self.name));
        if let Some(hp) = host_port {
            let (host, port) = hp.rsplit_once(':').unwrap();
            url.set_host(Some(host)).unwrap();
            url.set_port(Some(port.parse().unwrap())).unwrap();
        }
        url.to_string()
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

/// A TCP proxy in front of PostgreSQL that a test can cut, to make the database unreachable
/// for one app without touching the shared server.
pub struct CutProxy {
    pub addr: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl CutProxy {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let inner = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                inner.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Self { addr, tasks }
    }

    /// Closes every proxied connection and stops listening.
    pub fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: Database,
    pub data_dir: PathBuf,
    pub database_url: String,
    handle: actix_web::dev::ServerHandle,
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
        let app = Application::build_with(settings, options.hook)
            .await
            .expect("application starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let db = app.db().clone();
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        Self {
            address,
            client,
            db,
            data_dir,
            database_url,
            handle,
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
        self.client
            .get(self.url(path))
            .header("Accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap()
    }

    pub fn proxy(&self) -> &CutProxy {
        self._proxy.as_ref().expect("spawned with pg_through_proxy")
    }

    pub fn sqlite_path(&self) -> PathBuf {
        PathBuf::from(&self.database_url)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command now; workers wind down in the background.
        drop(self.handle.stop(false));
    }
}
