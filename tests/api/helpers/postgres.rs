//! A PostgreSQL database per test, and a proxy in front of the server that a test can cut.

use std::sync::{Arc, Mutex};

use diesel::{Connection, PgConnection, RunQueryDsl};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

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
