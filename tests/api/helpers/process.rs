//! The real `medport` binary run against a test app's database and data directory.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use super::TestApp;

/// The real `medport` binary, set up to run against the test app's database and data
/// directory (and nothing else from the environment but `PATH`).
pub fn medport_command(app: &TestApp) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medport"));
    cmd.current_dir(app.data_dir.parent().unwrap())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MEDPORT_DATA_DIR", &app.data_dir)
        .env("DATABASE_URL", &app.database_url);
    cmd
}

/// Runs the real `medport` binary with `args` against the test app's database and data
/// directory.
pub fn medport(app: &TestApp, args: &[&str]) -> Output {
    medport_command(app).args(args).output().unwrap()
}

/// Runs the real `medport` binary with `args` in `dir`, with nothing in its environment
/// but `env`.
pub fn medport_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medport"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Runs `medport serve` (with `extra_env`) against the test app's database and data directory, capturing its
/// log; returns the server's address and the log buffer.
pub fn serve_with_log(
    app: &TestApp,
    extra_env: &[(&str, &str)],
) -> (std::process::Child, String, Arc<Mutex<String>>) {
    let mut cmd = medport_command(app);
    cmd.arg("serve")
        .env("MEDPORT_BIND", "127.0.0.1:0")
        .envs(extra_env.iter().copied())
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1");
    spawn_until_ready(cmd)
}

/// Spawns a command that ends up running `medport serve`, capturing its log, and waits until
/// it is ready; returns the server's address and the log buffer.
pub fn spawn_until_ready(mut cmd: Command) -> (std::process::Child, String, Arc<Mutex<String>>) {
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
