//! The data directory is private whatever the umask the binary starts with: created 0700,
//! with the database, its WAL and shared memory and the master key 0600; an older, readable
//! one is tightened; one that others may write to stops start-up like a bad setting.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::spawn_until_ready;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `medport <args>` in `dir`, started by a shell whose umask is the common 022. The shell
/// first makes `shell-made/`, which shows that umask was really in force.
fn medport_with_umask_022(dir: &Path, args: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "umask 022; mkdir -p shell-made; exec \"$0\" {args}"
        ))
        .arg(env!("CARGO_BIN_EXE_medport"))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1");
    cmd
}

fn run(mut cmd: Command) -> (Option<i32>, String) {
    let Output { status, stderr, .. } = cmd.output().unwrap();
    (status.code(), String::from_utf8_lossy(&stderr).to_string())
}

/// Every directory under `dir` (itself included) is 0700 and every file 0600.
fn assert_private_tree(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private_tree(&path);
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

#[test]
fn migrate_with_umask_022_leaves_the_data_dir_and_its_files_private() {
    let root = tempfile::tempdir().unwrap();
    let (code, stderr) = run(medport_with_umask_022(root.path(), "migrate"));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        mode(&root.path().join("shell-made")),
        0o755,
        "umask 022 in force"
    );
    let data = root.path().join("data");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("medport.db")), 0o600);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_private_tree(&data);
}

#[test]
fn a_running_server_keeps_the_wal_and_shared_memory_private() {
    let root = tempfile::tempdir().unwrap();
    let mut cmd = medport_with_umask_022(root.path(), "serve");
    cmd.env("MEDPORT_BIND", "127.0.0.1:0");
    let (mut child, _, log) = spawn_until_ready(cmd);
    let data = root.path().join("data");
    // The server holds connections open, so SQLite's companion files exist now.
    for name in [
        "medport.db",
        "medport.db-wal",
        "medport.db-shm",
        "master.key",
    ] {
        let path = data.join(name);
        assert!(path.exists(), "{name}: {}", log.lock().unwrap());
        assert_eq!(mode(&path), 0o600, "{name}");
    }
    assert_private_tree(&data);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_data_dir_others_may_write_to_stops_start_up_with_one_line() {
    for open in [0o775, 0o757] {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        chmod(&data, open);
        for command in ["migrate", "serve"] {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_medport"));
            cmd.arg(command)
                .current_dir(root.path())
                .env_clear()
                .env("MEDPORT_DATA_DIR", &data)
                .env("MEDPORT_BIND", "127.0.0.1:0");
            let (code, stderr) = run(cmd);
            assert_eq!(code, Some(2), "{command} {open:o}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
            assert!(stderr.contains("writable by other users"), "{stderr}");
            assert!(
                stderr.contains(&format!("chmod 700 {}", data.display())),
                "{stderr}"
            );
        }
        assert_eq!(mode(&data), open, "left as it was");
        assert_eq!(
            std::fs::read_dir(&data).unwrap().count(),
            0,
            "nothing created"
        );
    }
}

#[test]
fn an_older_readable_data_dir_and_database_are_tightened() {
    let root = tempfile::tempdir().unwrap();
    let (code, stderr) = run(medport_with_umask_022(root.path(), "migrate"));
    assert_eq!(code, Some(0), "{stderr}");
    let data = root.path().join("data");
    let db = data.join("medport.db");
    // As an older version left them under umask 022.
    chmod(&data, 0o755);
    chmod(&db, 0o644);

    let (code, stderr) = run(medport_with_umask_022(root.path(), "migrate"));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&db), 0o600);
    assert_private_tree(&data);
    assert!(
        stderr.contains("made the data directory private"),
        "{stderr}"
    );
    assert!(
        stderr.contains("made the database file private"),
        "{stderr}"
    );

    let (code, stderr) = run(medport_with_umask_022(root.path(), "migrate"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stderr.contains("private"),
        "nothing left to tighten: {stderr}"
    );
}
