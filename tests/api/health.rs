//! Liveness and readiness.

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp};

async fn healthz_and_readyz_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let live = app.get("/healthz").await;
    assert_eq!(live.status(), 200);
    assert_eq!(live.text().await.unwrap(), "ok\n");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready\n");
}

both_backends!(healthz_and_readyz_answer);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_when_the_sqlite_file_is_unreadable() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    // Overwritten with something that is not a database (a bad restore, a disk fault).
    std::fs::write(app.sqlite_path(), vec![0x42u8; 8192]).unwrap();
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        res.text().await.unwrap(),
        "not ready: database file is not a SQLite database\n"
    );

    // Replaced by a rename (a restore while running): the connections still use the old
    // file, so the instance is not ready even though the new file is a database.
    let restored = app.sqlite_path().with_extension("restored");
    let mut header = b"SQLite format 3\0".to_vec();
    header.resize(8192, 0);
    std::fs::write(&restored, header).unwrap();
    std::fs::rename(&restored, app.sqlite_path()).unwrap();
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.text().await.unwrap(),
        "not ready: database file was replaced; restart medport\n"
    );

    // Gone altogether.
    std::fs::remove_file(app.sqlite_path()).unwrap();
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.text().await.unwrap(),
        "not ready: database file unreadable\n"
    );
    // Liveness is unaffected: the process itself is fine.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_when_postgres_is_unreachable() {
    let app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            pg_through_proxy: true,
            ..Options::default()
        },
    )
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.proxy().cut();
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.text().await.unwrap(),
        "not ready: database unreachable\n"
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
    // A page that needs the database says "temporarily unavailable", never 500.
    let page = app.get_html("/login").await;
    assert_eq!(page.status(), 503);
    assert!(page.headers().contains_key("retry-after"));
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("temporarily unavailable")
    );
}
