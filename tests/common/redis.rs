//! A real Redis server (Debian's `redis-server`, installed by scripts/install-deps.sh) for the
//! tests of the shared job store: tests/batches_redis.rs.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// A Redis process on a free 127.0.0.1 port and a temporary directory, without persistence;
/// killed (and the directory removed) when dropped.
pub struct Redis {
    child: Child,
    /// `redis://127.0.0.1:PORT/`.
    pub url: String,
    dir: super::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Redis and waits until it answers. `None` when redis-server is not installed,
/// outside CI only: in CI (env `CI` set) that fails the test.
pub fn start(name: &str) -> Option<Redis> {
    let dir = super::TempDir::new(&format!("redis-{name}"));
    let port = free_port();
    let spawned = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&*dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "redis-server is required in CI (scripts/install-deps.sh installs it): {e}"
            );
            eprintln!("redis-server not found ({e}); skipping");
            return None;
        }
    };
    let redis = Redis {
        child,
        url: format!("redis://127.0.0.1:{port}/"),
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(redis)
}
