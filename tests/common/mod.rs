//! Starts the real `inferd serve` binary on an ephemeral 127.0.0.1 port for end-to-end tests.

#![allow(dead_code)] // each test binary uses a different subset

pub mod batches;
pub mod prometheus;
pub mod redis;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running server, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    /// Log lines the server wrote to stderr so far (filled by a reader thread).
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The job store directory given as `INFERD_JOBS_DIR` (a fresh one per server, so test
    /// servers share no store with each other or with the user's), removed on drop.
    jobs_dir: TempDir,
    /// Directories the test handed over with [`Server::keep`], removed after the process ends.
    kept: Vec<TempDir>,
}

/// A fresh, empty directory under the system temp dir (`inferd-{name}-…`, from
/// [`inferd_testkit::temp_dir`]), removed with everything in it when dropped, so the suite
/// leaves nothing behind (some tests copy the model into theirs). Dereferences to its
/// [`std::path::Path`].
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        TempDir(inferd_testkit::temp_dir(name))
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        self.0.path()
    }
}

/// A fresh job store directory for one server.
fn fresh_jobs_dir() -> TempDir {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    TempDir::new(&format!("test-jobs-{n}"))
}

/// The model file the tests serve: `INFERD_TEST_MODEL`, else the default model in the cache.
pub fn model_path() -> PathBuf {
    if let Some(path) = std::env::var_os("INFERD_TEST_MODEL") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("INFERD_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/inferd")))
        .expect("HOME or INFERD_HOME must be set");
    let path = home.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "default model missing at {}: run `make model` first",
        path.display()
    );
    path
}

/// `--model` of the default model under the id `smollm2-135m`.
fn default_model_arg() -> String {
    format!("smollm2-135m={}", model_path().display())
}

/// `serve` on an ephemeral port of `host` with `model`, one compute thread, then `extra`.
fn serve_args<'a>(host: &'a str, model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "serve",
        "--host",
        host,
        "--port",
        "0",
        "--threads",
        "1",
        "--model",
        model,
    ];
    args.extend_from_slice(extra);
    args
}

impl Server {
    /// Hands `dir` to the server: removed when the server is dropped, after its process ends.
    pub fn keep(mut self, dir: TempDir) -> Server {
        self.kept.push(dir);
        self
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `inferd serve` with the default model (as id `smollm2-135m`) and extra flags,
    /// and waits until /ready says 200.
    pub fn start(extra: &[&str]) -> Server {
        Self::start_env(extra, &[])
    }

    /// As [`Server::start`], with extra environment variables.
    pub fn start_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        let model = default_model_arg();
        Self::start_with_env(&serve_args("127.0.0.1", &model, extra), env, true)
    }

    /// As [`Server::start`] but listening on `host`; waits for readiness when `wait_ready`.
    pub fn start_on_host(host: &str, extra: &[&str], wait_ready: bool) -> Server {
        let model = default_model_arg();
        Self::start_with_env(&serve_args(host, &model, extra), &[], wait_ready)
    }

    /// Starts the binary with exactly `args`; waits for readiness when `wait_ready`.
    pub fn start_raw(args: &[&str], wait_ready: bool) -> Server {
        Self::start_with_env(args, &[], wait_ready)
    }

    /// As [`Server::start_raw`], with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)], wait_ready: bool) -> Server {
        Self::spawn(
            Command::new(env!("CARGO_BIN_EXE_inferd")),
            args,
            env,
            wait_ready,
        )
    }

    /// As [`Server::start`], with the process limited to `limit` open file descriptors.
    pub fn start_with_fd_limit(limit: u32, extra: &[&str]) -> Server {
        let model = default_model_arg();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""));
        command.arg(env!("CARGO_BIN_EXE_inferd"));
        Self::spawn(command, &serve_args("127.0.0.1", &model, extra), &[], true)
    }

    fn spawn(
        mut command: Command,
        args: &[&str],
        env: &[(&str, &str)],
        wait_ready: bool,
    ) -> Server {
        let jobs_dir = fresh_jobs_dir();
        let mut child = command
            .args(args)
            .env("INFERD_LOG", "info")
            .env("INFERD_JOBS_DIR", &*jobs_dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start inferd");
        let stderr = child.stderr.take().expect("stderr piped");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let sink = std::sync::Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let url = line.find("listening on http://").map(|at| {
                    line[at + "listening on ".len()..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect::<String>()
                });
                // The line is in `logs` before the start returns.
                sink.lock().expect("log lock").push(line);
                if let Some(url) = url {
                    let _ = addr_tx.send(url);
                }
            }
        });
        let base = match addr_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "inferd did not report its address; logs: {:?}",
                    logs.lock().expect("lock")
                );
            }
        };
        let server = Server {
            child,
            base,
            logs,
            jobs_dir,
            kept: Vec::new(),
        };
        if wait_ready {
            server.wait_ready();
        }
        server
    }

    /// Starts `inferd serve` on an ephemeral 127.0.0.1 port with one compute thread, telemetry
    /// `local`, and `toml` as its `--config` file (written into `dir`), plus `extra` flags and
    /// `env`; waits for readiness when `wait_ready`.
    pub fn start_with_config(
        dir: &std::path::Path,
        toml: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        wait_ready: bool,
    ) -> Server {
        std::fs::create_dir_all(dir).expect("mkdir");
        let config = dir.join("inferd.toml");
        std::fs::write(&config, toml).expect("write config");
        let config = config.display().to_string();
        let mut args = vec![
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--threads",
            "1",
            "--config",
            &config,
            "--telemetry",
            "local",
        ];
        args.extend_from_slice(extra);
        Self::start_with_env(&args, env, wait_ready)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let get_status = probe::get_status;
        while Instant::now() < deadline {
            if get_status(&format!("{}/ready", self.base)) == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("inferd never became ready; logs: {:?}", self.logs());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("lock").clone()
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends the process a signal by name (`TERM`, `HUP`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the process to exit; its exit code, `None` if still running
    /// (or killed by a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The `host:port` the server listens on.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // `jobs_dir` and `kept` are removed when the fields drop, after the process has ended.
    }
}

/// A tiny blocking GET returning the status, so readiness polling needs no async runtime.
mod probe {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    pub fn get_status(url: &str) -> Option<u16> {
        let rest = url.strip_prefix("http://")?;
        let (host, path) = rest
            .split_once('/')
            .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
        let mut stream = TcpStream::connect(host).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_whitespace().nth(1)?.parse().ok()
    }
}

/// Collects an SSE body into its `data:` payloads.
/// Serves `app` on an ephemeral 127.0.0.1 port in the background; returns its address.
pub async fn serve_on_loopback(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

pub fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|line| {
            line.strip_prefix("data: ")
                .or_else(|| line.strip_prefix("data:"))
        })
        .map(|s| s.trim().to_owned())
        .collect()
}

/// An HTTP client for the tests (generous timeout: a debug build on a busy 2-core machine).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client")
}

/// The /metrics page as text.
pub async fn metrics_text(server: &Server) -> String {
    client()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text")
}

/// GET `path` on `server` and parse the JSON answer.
pub async fn get_json(server: &Server, path: &str) -> serde_json::Value {
    client()
        .get(server.url(path))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json")
}

/// The spans of `trace_id` from /debug/traces once it holds at least `min_spans` spans other
/// than `model.batch` (spans reach the store as they end; how many batch runs a request's
/// trace holds depends on timing, so they are not counted).
pub async fn wait_for_trace(
    server: &Server,
    trace_id: &str,
    min_spans: usize,
) -> Vec<serde_json::Value> {
    for _ in 0..50 {
        let r = client()
            .get(server.url(&format!("/debug/traces/{trace_id}")))
            .send()
            .await
            .expect("send");
        if r.status() == 200 {
            let trace: serde_json::Value = r.json().await.expect("json");
            let spans = trace["spans"].as_array().cloned().unwrap_or_default();
            let counted = spans.iter().filter(|s| s["name"] != "model.batch").count();
            if counted >= min_spans {
                return spans;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("trace {trace_id} never had {min_spans} spans");
}

/// A port nobody listens on at the moment of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
