//! `saffron serve` on SmolLM2 as a client meets it: the real `openai`
//! Python client (installed by `scripts/setup-system.sh --tests` into
//! `$SAFFRON_HOME/test-python`), then a load test of 64 clients x 20
//! requests, some dropped mid-stream (tests/serve/*.py).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::real_home;

const KEY: &str = "test-key";

/// A running server, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(dir: &Path) -> Server {
    let config = dir.join("serve.toml");
    std::fs::write(
        &config,
        "[server]\nmax_running = 16\nmax_queued = 64\n\n[models]\npolicy = \"smollm2\"\nprm = \"none\"\n\
         mrm = \"policy-logits\"\n\n[defence.strategy]\nname = \"saffron\"\nwidth = 4\n",
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_saffron"))
        .args(["serve", "--config", config.to_str().unwrap(), "--port", &port.to_string(), "--api-key", KEY])
        .env("SAFFRON_HOME", real_home())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let mut server = Server { child, port };
    let started = Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            if reply.starts_with("HTTP/1.1 200") {
                return server;
            }
        }
        assert!(server.child.try_wait().unwrap().is_none(), "the server exited while starting");
        assert!(started.elapsed() < Duration::from_secs(120), "the server was not ready in 2 minutes");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn python(script: &str, args: &[String]) -> std::process::Output {
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/serve");
    let packages = real_home().join("test-python");
    assert!(
        packages.join("openai").is_dir(),
        "the serve tests need the openai client in {}: run `bash scripts/setup-system.sh --tests`",
        packages.display()
    );
    Command::new("python3")
        .arg(scripts.join(script))
        .args(args)
        .env("PYTHONPATH", &packages)
        .output()
        .expect("python3 runs")
}

#[test]
fn the_openai_client_and_a_load_test_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let args = [server.port.to_string(), "smollm2".into(), KEY.into()];
    let out = python("openai_client.py", &args);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let mut args = args.to_vec();
    args.push(server.child.id().to_string());
    let out = python("load.py", &args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1280 requests, 0 failures"), "{text}");
}

#[test]
fn a_server_whose_models_cannot_load_stops_and_says_why() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let out = super::saffron(home.path(), &["serve", "--model", "nosuch", "--port", &port]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not be loaded") && stderr.contains("unknown model `nosuch`"), "{stderr}");
}
