//! `medport check`: one line per finding, ✓ or ✗ with a fix, exit code 1 on any ✗. Each
//! ✗ is provoked here once, against the real database, S3 server and clamd.

use std::os::unix::fs::PermissionsExt;

use diesel::prelude::*;

use crate::both_backends;
use crate::buckets::{
    create_through_form, new_s3_bucket, s3_client, s3_env, s3_fields, spawn_loopback,
};
use crate::helpers::{Backend, TestApp, medport_command, medport_in};
use crate::scanning::clamd_addr;

/// What `medport check` printed, and its exit code.
struct Checked {
    code: Option<i32>,
    lines: Vec<String>,
}

impl Checked {
    /// The line about `subject`; exactly one.
    fn line(&self, subject: &str) -> &str {
        let found: Vec<&String> = self
            .lines
            .iter()
            .filter(|l| l[l.char_indices().nth(2).map_or(0, |(i, _)| i)..].starts_with(subject))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one line about {subject}: {:#?}",
            self.lines
        );
        found[0]
    }

    fn passes(&self, subject: &str) -> bool {
        self.line(subject).starts_with("✓ ")
    }

    /// The ✗ line about `subject`, which must name a fix.
    fn failure(&self, subject: &str) -> &str {
        let line = self.line(subject);
        assert!(
            line.starts_with("✗ "),
            "{subject} should fail: {:#?}",
            self.lines
        );
        assert!(line.contains(" — fix: "), "a failure names its fix: {line}");
        assert_eq!(self.code, Some(1), "any ✗ exits 1: {:#?}", self.lines);
        line
    }
}

fn check(app: &TestApp, env: &[(&str, &str)], args: &[&str]) -> Checked {
    let out = medport_command(app)
        .arg("check")
        .args(args)
        .env("MEDPORT_ALLOW_LOOPBACK_ENDPOINTS", "true")
        .env("MEDPORT_CLAMD", clamd_addr())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.stderr.is_empty(),
        "findings go to stdout only: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Checked {
        code: out.status.code(),
        lines: stdout.lines().map(str::to_string).collect(),
    }
}

async fn a_healthy_installation_passes_every_check_and_keeps_no_test_object(backend: Backend) {
    let app = spawn_loopback(backend).await;
    app.sign_in_as("admin").await;
    let bucket = new_s3_bucket().await;
    let env = s3_env();
    create_through_form(&app, &s3_fields("Imaging", &bucket, &env)).await;
    let mut watch = app.watch_writes();

    let checked = check(&app, &[], &["--min-free-mib", "1"]);

    assert_eq!(checked.code, Some(0), "{:#?}", checked.lines);
    for subject in [
        "configuration:",
        "data directory:",
        "master key:",
        "database:",
        "bucket \"Default bucket\"",
        "bucket \"Imaging\"",
        "clamd:",
    ] {
        assert!(checked.passes(subject), "{subject}: {:#?}", checked.lines);
    }
    assert!(checked.line("database:").contains("schema is current"));
    // PostgreSQL's autovacuum, as the server is set (noted, not failed, when off).
    match backend {
        Backend::Sqlite => assert!(
            !checked
                .lines
                .iter()
                .any(|l| l.contains("database maintenance")),
            "{:#?}",
            checked.lines
        ),
        Backend::Postgres => {
            #[derive(diesel::QueryableByName)]
            struct Setting {
                #[diesel(sql_type = diesel::sql_types::Text)]
                setting: String,
            }
            let mut conn = app.db.conn().unwrap();
            let on = diesel::sql_query("SELECT current_setting('autovacuum') AS setting")
                .get_result::<Setting>(&mut *conn)
                .unwrap()
                .setting
                == "on";
            let line = checked.line("database maintenance:");
            assert_eq!(line.starts_with("✓ "), on, "{line}");
            assert_eq!(
                line.starts_with("– ") && line.contains("autovacuum is off"),
                !on,
                "{line}"
            );
        }
    }
    assert!(checked.line("clamd:").contains("answers PING"));
    // Loopback only and no public URL: a trial, noted rather than failed.
    assert!(checked.line("public URL:").starts_with("– "));
    // The probe objects were deleted, and the database was only read.
    let left = s3_client()
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(left.key_count(), Some(0), "{left:?}");
    assert_eq!(watch.written(), Vec::<String>::new());
}

async fn a_bucket_with_a_wrong_key_is_named_with_what_to_fix(backend: Backend) {
    let app = spawn_loopback(backend).await;
    app.sign_in_as("admin").await;
    let bucket = new_s3_bucket().await;
    let env = s3_env();
    let mut fields = s3_fields("Wrong key", &bucket, &env);
    for field in &mut fields {
        if field.0 == "secret_key" {
            field.1 = "not-the-secret-key";
        }
    }
    create_through_form(&app, &fields).await;

    let checked = check(&app, &[], &["--min-free-mib", "1"]);

    let line = checked.failure("bucket \"Wrong key\"");
    assert!(line.contains("Admin › Buckets › Wrong key"), "{line}");
    assert!(!line.contains("not-the-secret-key"), "{line}");
    assert!(checked.passes("bucket \"Default bucket\""));
}

async fn unapplied_migrations_are_named_and_left_unapplied(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let last: String = {
        use diesel::sql_types::Text;
        #[derive(QueryableByName)]
        struct Version {
            #[diesel(sql_type = Text)]
            version: String,
        }
        let mut conn = app.db.conn().unwrap();
        let Version { version } = diesel::sql_query(
            "SELECT version FROM __diesel_schema_migrations ORDER BY version DESC LIMIT 1",
        )
        .get_result(&mut *conn)
        .unwrap();
        diesel::sql_query(format!(
            "DELETE FROM __diesel_schema_migrations WHERE version = '{version}'"
        ))
        .execute(&mut *conn)
        .unwrap();
        version
    };

    let checked = check(&app, &[], &["--min-free-mib", "1"]);

    let line = checked.failure("database:");
    assert!(line.contains("1 migration(s) are not applied"), "{line}");
    assert!(line.contains("medport migrate"), "{line}");
    let still: i64 = {
        use diesel::sql_types::BigInt;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut conn = app.db.conn().unwrap();
        diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM __diesel_schema_migrations WHERE version = '{last}'"
        ))
        .get_result::<Count>(&mut *conn)
        .unwrap()
        .n
    };
    assert_eq!(still, 0, "check applies nothing");
}

both_backends!(
    a_healthy_installation_passes_every_check_and_keeps_no_test_object,
    a_bucket_with_a_wrong_key_is_named_with_what_to_fix,
    unapplied_migrations_are_named_and_left_unapplied,
);

#[tokio::test]
async fn loose_modes_little_space_and_a_silent_clamd_each_fail_with_a_fix() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.data_dir.join("master.key");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let checked = check(&app, &[], &["--min-free-mib", "1"]);
    let line = checked.failure("master key:");
    assert!(
        line.contains("mode 644") && line.contains("chmod 600"),
        "{line}"
    );
    assert!(
        checked
            .line("buckets:")
            .contains("fix the master key first"),
        "{:#?}",
        checked.lines
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Other commands refuse such a data directory outright; check says why and goes on.
    std::fs::set_permissions(&app.data_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let checked = check(&app, &[], &["--min-free-mib", "1"]);
    let line = checked.failure("data directory:");
    assert!(
        line.contains("mode 777") && line.contains("chmod 700"),
        "{line}"
    );
    assert!(checked.passes("database:"));
    std::fs::set_permissions(&app.data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    let checked = check(&app, &[], &["--min-free-mib", "1073741824"]);
    let line = checked.failure("data directory:");
    assert!(line.contains("free (at least 1 PiB wanted)"), "{line}");

    let checked = check(
        &app,
        &[("MEDPORT_CLAMD", "127.0.0.1:1")],
        &["--min-free-mib", "1"],
    );
    let line = checked.failure("clamd:");
    assert!(line.contains("127.0.0.1:1"), "{line}");

    let checked = check(&app, &[], &["--min-free-mib", "1"]);
    assert_eq!(checked.code, Some(0), "all put back: {:#?}", checked.lines);
}

#[test]
fn a_missing_installation_is_reported_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let out = medport_in(dir.path(), &["check"], &[("MEDPORT_DATA_DIR", "absent")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for expected in [
        "✗ data directory: absent does not exist yet",
        "✗ master key: absent/master.key does not exist",
        "✗ database: no SQLite database at absent/medport.db",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
    assert!(
        !dir.path().join("absent").exists(),
        "check created the data directory"
    );
}

#[test]
fn an_unreachable_database_and_a_bad_setting_are_findings_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = medport_in(
        dir.path(),
        &["check"],
        &[(
            "DATABASE_URL",
            "postgres://postgres:pw-xyz@127.0.0.1:1/medport",
        )],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("✗ database: cannot connect to PostgreSQL"),
        "{stdout}"
    );
    assert!(stdout.contains("fix: check DATABASE_URL"), "{stdout}");
    assert!(!stdout.contains("pw-xyz"), "{stdout}");

    let out = medport_in(dir.path(), &["check"], &[("MEDPORT_LOG_FORMAT", "xml")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("✗ configuration: invalid setting MEDPORT_LOG_FORMAT"),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_public_url_must_be_https_behind_a_trusted_proxy_once_others_can_reach_it() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let min_free = ["--min-free-mib", "1"];

    let plain = check(
        &app,
        &[("MEDPORT_PUBLIC_URL", "http://medport.example.org")],
        &min_free,
    );
    let line = plain.failure("public URL:");
    assert!(line.contains("HSTS is off"), "{line}");

    let open = check(&app, &[("MEDPORT_BIND", "0.0.0.0:8080")], &min_free);
    let line = open.failure("public URL:");
    assert!(line.contains("0.0.0.0:8080"), "{line}");

    let https = [("MEDPORT_PUBLIC_URL", "https://medport.example.org")];
    let untrusted = check(&app, &https, &min_free);
    let line = untrusted.failure("public URL:");
    assert!(line.contains("MEDPORT_TRUSTED_PROXIES"), "{line}");

    let proxied = check(
        &app,
        &[https[0], ("MEDPORT_TRUSTED_PROXIES", "127.0.0.1")],
        &min_free,
    );
    assert!(proxied.passes("public URL:"), "{:#?}", proxied.lines);
    assert!(proxied.line("public URL:").contains("HSTS is sent"));
    assert_eq!(proxied.code, Some(0), "{:#?}", proxied.lines);
}

#[tokio::test]
async fn single_sign_on_is_checked_against_the_provider_when_set() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let min_free = ["--min-free-mib", "1"];
    let off = check(&app, &[], &min_free);
    assert!(
        off.line("single sign-on:").starts_with("– "),
        "{:#?}",
        off.lines
    );

    let settings = |issuer: &str| -> Vec<(&'static str, String)> {
        vec![
            ("MEDPORT_PUBLIC_URL", "http://127.0.0.1:8080".into()),
            ("MEDPORT_OIDC_ISSUER", issuer.into()),
            ("MEDPORT_OIDC_CLIENT_ID", "medport".into()),
            ("MEDPORT_OIDC_CLIENT_SECRET", "a client secret".into()),
            ("MEDPORT_OIDC_UPLOADER_VALUES", "clinicians".into()),
        ]
    };
    let answering = settings(&crate::helpers::oidc::issuer());
    let answering: Vec<(&str, &str)> = answering.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let found = check(&app, &answering, &min_free);
    assert!(found.passes("single sign-on:"), "{:#?}", found.lines);
    assert!(found.line("single sign-on:").contains("sign-out offered"));

    // Nothing listens on port 9 of this machine.
    let down = settings("http://127.0.0.1:9");
    let down: Vec<(&str, &str)> = down.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let checked = check(&app, &down, &min_free);
    let line = checked.failure("single sign-on:");
    assert!(line.contains("MEDPORT_OIDC_ISSUER"), "{line}");
}

#[tokio::test]
async fn the_smtp_server_is_checked_and_its_password_never_shown() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let min_free = ["--min-free-mib", "1"];
    let off = check(&app, &[], &min_free);
    let line = off.line("e-mail (SMTP):");
    assert!(
        line.starts_with("– ") && line.contains("stays queued"),
        "{line}"
    );

    let env = crate::helpers::notifications::smtp_env();
    let url = format!("smtp://127.0.0.1:{}", env.port);
    let sender = [("MEDPORT_SMTP_FROM", "medport <noreply@example.org>")];
    let answering = [sender[0], ("MEDPORT_SMTP_URL", url.as_str())];
    let found = check(&app, &answering, &min_free);
    assert!(found.passes("e-mail (SMTP):"), "{:#?}", found.lines);
    assert!(
        found
            .line("e-mail (SMTP):")
            .contains("from medport <noreply@example.org>")
    );

    // A server that is down, reached with a password: named with a fix, the password never.
    let down = format!(
        "smtp://medport:s3cret-pw@127.0.0.1:{}",
        crate::helpers::notifications::closed_smtp_port()
    );
    let failing = [sender[0], ("MEDPORT_SMTP_URL", down.as_str())];
    let checked = check(&app, &failing, &min_free);
    let line = checked.failure("e-mail (SMTP):");
    assert!(
        line.contains("signs in as medport (password set)"),
        "{line}"
    );
    assert!(
        checked.lines.iter().all(|l| !l.contains("s3cret-pw")),
        "{:#?}",
        checked.lines
    );
}
