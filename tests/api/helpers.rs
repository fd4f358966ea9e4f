//! `TestApp`: a real medport server on port 0 with its own database (a temp SQLite file, or
//! a fresh PostgreSQL database per test) and its own data directory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use diesel::{Connection, PgConnection, RunQueryDsl};
use medport::clock::Clock;
use medport::config::{DatabaseSettings, Settings};
use medport::db::Database;
use medport::startup::{Application, BuildOptions, RouteHook};
use secrecy::SecretString;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

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
    pub jar: Arc<reqwest::cookie::Jar>,
    pub db: Database,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub clock: Clock,
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
        tokio::spawn(app.run_until_stopped());
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

    pub fn master_keyring(&self) -> medport::storage::secrets::Keyring {
        let text = std::fs::read_to_string(self.data_dir.join("master.key")).unwrap();
        let bytes: [u8; 32] = hex::decode(text.trim()).unwrap().try_into().unwrap();
        medport::storage::secrets::Keyring::new(Arc::new(medport::keys::MasterKey::from_bytes(
            bytes,
        )))
    }

    /// Creates an account directly in the database (as `medport user create` would).
    pub fn create_user(&self, email: &str, role: &str, password: &str) -> String {
        use medport::auth::{passwords, users};
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
        use medport::auth::api_keys::{self, ChangedBy, KeyName, KeyRequest};
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

    /// The CSRF token of the current session, read from a page the way a browser would.
    pub async fn csrf_token_with(&self, client: &reqwest::Client, path: &str) -> String {
        let html = client
            .get(self.url(path))
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        extract_csrf(&html).unwrap_or_else(|| panic!("no csrf token on {path}: {html}"))
    }

    pub async fn login_with(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        let token = self.csrf_token_with(client, "/login").await;
        client
            .post(self.url("/login"))
            .header("Accept", "text/html")
            .form(&[
                ("email", email),
                ("password", password),
                ("csrf_token", &token),
                ("next", "/"),
            ])
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.login_with(&self.client, email, password).await
    }

    /// Signs in and asserts it worked.
    pub async fn sign_in(&self, email: &str, password: &str) {
        let res = self.login(email, password).await;
        assert_eq!(res.status(), 303, "sign-in failed for {email}");
        assert_eq!(res.headers()["location"], "/");
    }

    /// The session's CSRF token whether or not it is signed in (sign-in page, or the
    /// account page once signed in).
    /// Follows redirects (a signed-in user may be sent on to a password change or TOTP
    /// enrolment) until a page shows one.
    pub async fn session_csrf(&self, client: &reqwest::Client) -> String {
        let mut path = "/login".to_string();
        for _ in 0..4 {
            let res = client
                .get(self.url(&path))
                .header("Accept", "text/html")
                .send()
                .await
                .unwrap();
            if res.status() != 303 {
                return extract_csrf(&res.text().await.unwrap())
                    .unwrap_or_else(|| panic!("no csrf token on {path}"));
            }
            path = match location(&res).as_str() {
                "/" => "/account".to_string(),
                other => other.to_string(),
            };
        }
        panic!("no page with a csrf token after {path}");
    }

    /// POST a form as a browser would, with the session's CSRF token.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let token = self.session_csrf(&self.client).await;
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &token));
        self.client
            .post(self.url(path))
            .header("Accept", "text/html")
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    pub fn audit_actions(&self) -> Vec<(String, String, String)> {
        use diesel::prelude::*;
        use medport::db::schema::audit_events::dsl::*;
        let mut conn = self.db.conn().unwrap();
        audit_events
            .select((action, outcome, details))
            .order(id.asc())
            .load(&mut *conn)
            .unwrap()
    }

    /// The audit table's stored text, in bytes: every column of every row (ids and times
    /// counted as their text form), for tests that bound how fast it can grow.
    pub fn audit_bytes(&self) -> usize {
        use diesel::prelude::*;
        use medport::db::schema::audit_events::dsl::*;
        let mut conn = self.db.conn().unwrap();
        let text: Vec<(String, String, String, String, String, String)> = audit_events
            .select((actor_label, action, outcome, details, prev_hash, hash))
            .load(&mut *conn)
            .unwrap();
        let optional: Vec<(Option<String>, Option<String>)> = audit_events
            .select((ip, target_id))
            .load(&mut *conn)
            .unwrap();
        // id, time, actor id, target type and request id: at most this much more per row.
        let fixed = 8 + 26 + 36 + 16 + 36;
        let text: usize = text
            .iter()
            .map(|(a, b, c, d, e, f)| {
                fixed + a.len() + b.len() + c.len() + d.len() + e.len() + f.len()
            })
            .sum();
        let optional: usize = optional
            .iter()
            .map(|(a, b)| a.as_ref().map_or(0, String::len) + b.as_ref().map_or(0, String::len))
            .sum();
        text + optional
    }

    /// Gives a user a TOTP secret the test knows (as enrolment would) and 10 recovery codes.
    pub fn enrol_totp(
        &self,
        user_id: &str,
        email: &str,
    ) -> (medport::auth::totp::TotpSecret, Vec<String>) {
        use diesel::prelude::*;
        use medport::auth::{recovery_codes, totp};
        use medport::db::schema::users;
        use medport::storage::secrets::{self, SealContext};
        let secret = totp::TotpSecret::generate().unwrap();
        let sealed = secrets::seal(
            &self.master_keyring(),
            &SealContext {
                table: "users",
                row_id: user_id,
                field: "totp_secret",
            },
            secret.expose(),
        )
        .unwrap();
        let codes = recovery_codes::generate().unwrap();
        let stored = recovery_codes::StoredCodes::from_codes(&codes);
        let mut conn = self.db.conn().unwrap();
        diesel::update(users::table.filter(users::email.eq(email)))
            .set((
                users::totp_secret_sealed.eq(Some(sealed)),
                users::recovery_codes.eq(Some(stored.to_json())),
            ))
            .execute(&mut *conn)
            .unwrap();
        (secret, codes)
    }

    pub async fn submit_totp(&self, code: &str) -> reqwest::Response {
        let token = self.csrf_token_with(&self.client, "/login/totp").await;
        self.client
            .post(self.url("/login/totp"))
            .header("Accept", "text/html")
            .form(&[("code", code), ("csrf_token", &token)])
            .send()
            .await
            .unwrap()
    }

    /// Creates a user of `role` and signs in as them in the main browser; admins get TOTP
    /// enrolled and pass the second step (a fresh step each time: the clock moves 30 s).
    /// Returns (user id, email, password, TOTP secret for admins).
    pub async fn sign_in_as(&self, role: &str) -> SignedIn {
        let email = format!("{role}-{}@example.org", uuid::Uuid::now_v7().simple());
        let password = "a long enough test password";
        let id = self.create_user(&email, role, password);
        let secret = if role == "admin" {
            Some(self.enrol_totp(&id, &email).0)
        } else {
            None
        };
        self.sign_in_existing(&email, password, secret.as_ref())
            .await;
        SignedIn {
            id,
            email,
            password: password.to_string(),
            totp: secret,
        }
    }

    pub async fn sign_in_existing(
        &self,
        email: &str,
        password: &str,
        totp_secret: Option<&medport::auth::totp::TotpSecret>,
    ) {
        use medport::auth::totp;
        let res = self.login(email, password).await;
        assert_eq!(res.status(), 303, "sign-in failed for {email}");
        if let Some(secret) = totp_secret {
            assert_eq!(location(&res), "/login/totp");
            self.clock.advance(std::time::Duration::from_secs(30));
            let code = totp::code_for_step(secret, totp::step_at(self.clock.unix()));
            let res = self.submit_totp(&code).await;
            assert_eq!(res.status(), 303, "TOTP step failed for {email}");
        }
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

pub fn extract_csrf(html: &str) -> Option<String> {
    let re = regex::Regex::new(r#"name="csrf_token" value="([^"]+)""#).unwrap();
    re.captures(html).map(|c| c[1].to_string())
}

/// A second browser signed in as a user without TOTP.
pub async fn browser_signed_in(app: &TestApp, email: &str, password: &str) -> reqwest::Client {
    let (client, _) = app.new_browser();
    let res = app.login_with(&client, email, password).await;
    assert_eq!(res.status(), 303, "sign-in failed for {email}");
    assert_eq!(location(&res), "/");
    client
}

/// A request from a script: no cookies, just the bearer header.
pub async fn api_get(app: &TestApp, path: &str, key: &str) -> reqwest::Response {
    let (client, _) = app.new_browser();
    client
        .get(app.url(path))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap()
}

/// Runs the real `medport` binary with `args` against the test app's database and data
/// directory.
pub fn medport(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_medport"))
        .args(args)
        .current_dir(app.data_dir.parent().unwrap())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MEDPORT_DATA_DIR", &app.data_dir)
        .env("DATABASE_URL", &app.database_url)
        .output()
        .unwrap()
}

/// The manual-entry key on the enrolment page, as a secret the test can compute codes with.
pub fn secret_from_page(html: &str) -> (String, medport::auth::totp::TotpSecret) {
    let re = regex::Regex::new(r"<code>([A-Z2-7 ]{32,})</code>").unwrap();
    let grouped = re.captures(html).expect("manual key on the page")[1].to_string();
    let base32: String = grouped.split_whitespace().collect();
    let seed = data_encoding::BASE32_NOPAD
        .decode(base32.as_bytes())
        .unwrap();
    (
        base32,
        medport::auth::totp::TotpSecret::from_bytes(&seed).unwrap(),
    )
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

pub struct SignedIn {
    pub id: String,
    pub email: String,
    pub password: String,
    pub totp: Option<medport::auth::totp::TotpSecret>,
}

/// Runs `medport serve` (with `extra_env`) against the test app's database and data directory, capturing its
/// log; returns the server's address and the log buffer.
pub fn serve_with_log(
    app: &TestApp,
    extra_env: &[(&str, &str)],
) -> (std::process::Child, String, Arc<Mutex<String>>) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_medport"));
    cmd.arg("serve")
        .current_dir(app.data_dir.parent().unwrap())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MEDPORT_DATA_DIR", &app.data_dir)
        .env("DATABASE_URL", &app.database_url)
        .env("MEDPORT_BIND", "127.0.0.1:0")
        .envs(extra_env.iter().copied())
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1");
    spawn_until_ready(cmd)
}

/// Spawns a command that ends up running `medport serve`, capturing its log, and waits until
/// it is ready; returns the server's address and the log buffer.
pub fn spawn_until_ready(
    mut cmd: std::process::Command,
) -> (std::process::Child, String, Arc<Mutex<String>>) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let ready = regex::Regex::new(r"ready on http://127\.0\.0\.1:(\d+)").unwrap();
    for stream in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let log = log.clone();
        let tx = tx.clone();
        let port = ready.clone();
        std::thread::spawn(move || {
            for line in
                std::io::BufRead::lines(std::io::BufReader::new(stream)).map_while(Result::ok)
            {
                if let Some(c) = port.captures(&line) {
                    let _ = tx.send(c[1].to_string());
                }
                let mut all = log.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
    }
    let port = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("server did not start: {}", log.lock().unwrap()));
    (child, format!("http://127.0.0.1:{port}"), log)
}
