//! Start-up refuses bad configuration with a non-zero exit and the setting's name.

use std::process::Command;

use crate::helpers::medport_in;

fn run_with_env(vars: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medport"));
    cmd.args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_settings_stop_start_up_naming_the_setting() {
    for (var, value) in [
        ("MEDPORT_BIND", "not-an-address"),
        ("MEDPORT_PUBLIC_URL", "ftp://files.example.org"),
        ("MEDPORT_LOG_FORMAT", "xml"),
        ("MEDPORT_DB_POOL_SIZE", "0"),
        ("MEDPORT_MASTER_KEY", "too-short"),
        ("DATABASE_URL", "mysql://db/medport"),
    ] {
        let (code, stderr) = run_with_env(&[(var, value)], &[]);
        assert_eq!(code, Some(2), "{var}: {stderr}");
        assert!(stderr.contains(var), "{var}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
        if var == "MEDPORT_MASTER_KEY" {
            assert!(!stderr.contains(value), "secret value echoed: {stderr}");
        }
    }
}

#[test]
fn secret_in_database_url_is_never_printed() {
    let (code, stderr) = run_with_env(
        &[("DATABASE_URL", "postgres://u:hunter2-secret@")],
        &["migrate"],
    );
    assert_ne!(code, Some(0));
    assert!(!stderr.contains("hunter2-secret"), "{stderr}");
}

#[test]
fn unreachable_postgres_fails_without_falling_back_to_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let out = medport_in(
        dir.path(),
        &["migrate"],
        &[(
            "DATABASE_URL",
            "postgres://postgres:pw-xyz@127.0.0.1:1/medport",
        )],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot open the database"), "{stderr}");
    assert!(!stderr.contains("pw-xyz"), "{stderr}");
    // Nothing was created that looks like a SQLite file named after the URL.
    let created: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(created.iter().all(|n| n == "master.key"), "{created:?}");
}

#[test]
fn migrate_command_on_a_fresh_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = medport_in(dir.path(), &["migrate"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/medport.db").exists());
    let key = dir.path().join("data/master.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
