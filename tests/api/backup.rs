//! `medport backup`, `backup verify` and `restore`, run as the binary against a server
//! that keeps working meanwhile. A restored data directory is started as a server of its
//! own and must give back every completed file, its audit chain and its sign-ins.

use std::path::{Path, PathBuf};
use std::process::Output;

use medport::config::{DatabaseSettings, MasterKeySource};

use crate::helpers::{Backend, Options, SignedIn, TestApp, medport, medport_in};
use crate::tus_support::{Tus, pdf};

const MIB: usize = 1024 * 1024;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(app: &TestApp, args: &[&str]) -> Output {
    medport(app, args)
}

/// `medport` with no settings at all (verify and restore read a backup, not a server).
fn bare(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    medport_in(dir.path(), args, &[])
}

/// `medport restore --from FROM --data-dir TO`.
fn restore(from: &Path, to: &Path) -> Output {
    bare(&[
        "restore",
        "--from",
        from.to_str().unwrap(),
        "--data-dir",
        to.to_str().unwrap(),
    ])
}

/// A server on a restored data directory, in this process, so the usual actors work.
async fn serve_restored(dir: &Path) -> TestApp {
    let dir = dir.to_path_buf();
    TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            tweak: Box::new(move |s| {
                s.database = DatabaseSettings::Sqlite {
                    path: dir.join("medport.db"),
                };
                s.master_key = MasterKeySource::DataDir(dir.join("master.key"));
                s.data_dir = dir;
            }),
            ..Options::default()
        },
    )
    .await
}

/// A clinician's API key that may upload and read.
fn clinician_key(app: &TestApp) -> String {
    let user = app.create_user(
        "clinician@example.org",
        "uploader",
        "a long enough test password",
    );
    app.create_api_key(&user, "upload,read")
}

/// A stored file's bytes, fetched with the API key; the answer must be 200.
async fn content(app: &TestApp, key: &str, id: &str) -> Vec<u8> {
    let res = app
        .client
        .get(app.url(&format!("/api/v1/uploads/{id}/content")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{id}");
    res.bytes().await.unwrap().to_vec()
}

struct Sent {
    id: String,
    data: Vec<u8>,
}

/// An administrator with TOTP, a clinician's API key, two completed uploads (one of
/// several parts) and one still in flight.
async fn installation_in_use(app: &TestApp) -> (SignedIn, String, Vec<Sent>, Sent) {
    let admin = app.sign_in_as("admin").await;
    let key = clinician_key(app);
    let tus = Tus::with_key(app, &key);
    let mut done = Vec::new();
    for (name, data) in [
        ("letter.pdf", pdf(300_000, 1)),
        ("scan.pdf", pdf(9 * MIB, 2)),
    ] {
        let id = tus.upload(name, &data, None, 4 * MIB).await;
        done.push(Sent { id, data });
    }
    let data = pdf(3 * MIB, 3);
    let id = tus.create_ok("later.pdf", data.len() as u64, None).await;
    tus.send_from(&id, &data[..MIB], 0, MIB).await;
    (admin, key, done, Sent { id, data })
}

async fn a_backup_taken_while_uploads_go_on_restores_whole(rotate: bool) {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (admin, key, mut done, in_flight) = installation_in_use(&app).await;
    if rotate {
        let out = run(&app, &["keys", "rotate"]);
        assert!(out.status.success(), "{}", text(&out));
        // Not restarted yet, the server still seals new files with the previous key: the
        // backup needs both.
        let data = pdf(200_000, 4);
        let id = Tus::with_key(&app, &key)
            .upload("after-rotation.pdf", &data, None, MIB)
            .await;
        done.push(Sent { id, data });
    }
    let root = tempfile::tempdir().unwrap();
    let backup = root.path().join("backup");

    let out = run(&app, &["backup", "--to", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    // The server goes on: the upload in flight finishes after the backup. (After a
    // rotation it must be restarted first: its upload's data key moved to the new key.)
    if !rotate {
        let tus = Tus::with_key(&app, &key);
        tus.send_from(&in_flight.id, &in_flight.data, MIB, MIB)
            .await;
    }

    let out = bare(&["backup", "verify", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).starts_with("backup verified: "),
        "{}",
        text(&out)
    );
    for (path, mode) in [
        (backup.clone(), 0o700),
        (backup.join("data/master.key"), 0o600),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let found = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(found, mode, "{}", path.display());
    }
    if rotate {
        let old_keys = std::fs::read_dir(backup.join("data"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("master.key.old.")
            })
            .count();
        assert_eq!(old_keys, 1, "the previous key is in the backup");
    }

    let restored_dir = root.path().join("restored");
    let out = restore(&backup, &restored_dir);
    assert!(out.status.success(), "{}", text(&out));
    let out = medport_in(
        root.path(),
        &["audit", "verify"],
        &[("MEDPORT_DATA_DIR", restored_dir.to_str().unwrap())],
    );
    assert!(
        out.status.success(),
        "the restored audit chain: {}",
        text(&out)
    );

    let restored = serve_restored(&restored_dir).await;
    for sent in &done {
        assert!(
            content(&restored, &key, &sent.id).await == sent.data,
            "{} byte for byte",
            sent.id
        );
    }
    // The upload in flight at the backup resumes on the restored server from where the
    // backup saw it.
    let tus = Tus::with_key(&restored, &key);
    let offset = tus.offset(&in_flight.id).await;
    assert_eq!(offset, MIB as u64);
    tus.send_from(&in_flight.id, &in_flight.data, MIB, MIB)
        .await;
    assert!(content(&restored, &key, &in_flight.id).await == in_flight.data);
    // Past the original's last accepted code, which the restored database remembers.
    restored.clock.advance(std::time::Duration::from_secs(90));
    restored
        .sign_in_existing(&admin.email, &admin.password, admin.totp.as_ref())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_uploads_go_on_restores_every_file_the_chain_and_totp() {
    a_backup_taken_while_uploads_go_on_restores_whole(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_rotated_instance_carries_the_older_key() {
    a_backup_taken_while_uploads_go_on_restores_whole(true).await;
}

/// A backup of an app on `backend` with one completed upload of `len` bytes, and what
/// the command printed.
async fn backed_up_on(
    backend: Backend,
    len: usize,
) -> (TestApp, tempfile::TempDir, PathBuf, String) {
    let app = TestApp::spawn(backend).await;
    let key = clinician_key(&app);
    Tus::with_key(&app, &key)
        .upload("scan.pdf", &pdf(len, 9), None, 4 * MIB)
        .await;
    let root = tempfile::tempdir().unwrap();
    let backup = root.path().join("backup");
    let out = run(&app, &["backup", "--to", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    (app, root, backup, text(&out))
}

async fn backed_up(len: usize) -> (TestApp, tempfile::TempDir, PathBuf) {
    let (app, root, backup, _) = backed_up_on(Backend::Sqlite, len).await;
    (app, root, backup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_byte_is_named_and_refuses_the_restore() {
    let (_app, root, backup) = backed_up(MIB).await;
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).unwrap()).unwrap();
    let part = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .find(|p| p.contains("/blobs/"))
        .expect("an object's part is in the backup");
    let path = backup.join(&part);
    let mut content = std::fs::read(&path).unwrap();
    let middle = content.len() / 2;
    content[middle] ^= 1;
    std::fs::write(&path, content).unwrap();

    let out = bare(&["backup", "verify", backup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("✗ {part} differs from the manifest")),
        "{}",
        text(&out)
    );

    let target = root.path().join("restored");
    let out = restore(&backup, &target);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(&part), "{}", text(&out));
    assert!(!target.exists(), "nothing was restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_and_backup_refuse_a_directory_that_is_not_empty() {
    let (app, root, backup) = backed_up(1000).await;
    let occupied = root.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("keep.txt"), "mine").unwrap();

    let out = restore(&backup, &occupied);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is not empty"), "{}", text(&out));
    let left: Vec<_> = std::fs::read_dir(&occupied).unwrap().collect();
    assert_eq!(left.len(), 1, "the directory is as it was");

    let out = run(&app, &["backup", "--to", occupied.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is not empty"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(occupied.join("keep.txt")).unwrap(),
        "mine"
    );

    // A directory without a manifest is not a backup.
    let out = restore(&occupied, &root.path().join("new"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("has no manifest.json"),
        "{}",
        text(&out)
    );
}

/// A 1 MiB file system, unmounted when dropped.
struct SmallDisk {
    point: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let point = dir.path().join("disk");
        std::fs::create_dir(&point).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&point)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the full-disk test mounts a 1 MiB tmpfs and needs root: {}",
            text(&out)
        );
        Self { point, _dir: dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.point)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_cleanly_and_leaves_no_backup() {
    let (app, _root, _backup) = backed_up(3 * MIB).await;
    let disk = SmallDisk::mount();
    let target = disk.point.join("backup");

    let out = run(&app, &["backup", "--to", target.to_str().unwrap()]);

    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("No space left on device"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("nothing was kept"), "{}", text(&out));
    assert!(!target.exists(), "the partial backup was removed");
    let left: Vec<_> = std::fs::read_dir(&disk.point).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_the_backup_holds_the_keys_and_objects_and_names_pg_dump() {
    let (app, _root, backup, printed) = backed_up_on(Backend::Postgres, 100_000).await;

    assert!(printed.contains("dump it with pg_dump"), "{printed}");
    assert!(!printed.contains(&app.database_url), "{printed}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["database"], "postgresql");
    let paths: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"data/master.key"), "{paths:?}");
    assert!(
        paths.iter().any(|p| p.starts_with("data/objects/blobs/")),
        "{paths:?}"
    );
    assert!(!paths.iter().any(|p| p.ends_with(".db")), "{paths:?}");
    assert!(
        bare(&["backup", "verify", backup.to_str().unwrap()])
            .status
            .success()
    );
}
