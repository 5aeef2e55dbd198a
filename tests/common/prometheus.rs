//! A real Prometheus server (Debian's `prometheus`, installed by scripts/install-deps.sh) for
//! the tests that scrape a live inferd: tests/prometheus.rs and tests/deploy.rs.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::free_port;

/// A Prometheus process on a temporary directory; killed (and the directory removed) when
/// dropped.
pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:PORT` of its HTTP API.
    pub base: String,
    dir: super::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Prometheus scraping `targets` (host:port) as job `inferd` every second, evaluating
/// `rule_file` (if any) every second, with exemplar storage on (its scrapes then ask for
/// OpenMetrics and keep the exemplars on histogram buckets). `None` when Prometheus is not
/// installed, outside CI only: in CI (env `CI` set) that fails the test.
pub fn start(name: &str, targets: &[String], rule_file: Option<&Path>) -> Option<Prometheus> {
    let dir = super::TempDir::new(name);
    let config = dir.join("prometheus.yml");
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let rules = rule_file
        .map(|path| format!("rule_files:\n  - {}\n", path.display()))
        .unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rules}\
             scrape_configs:\n  - job_name: inferd\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .expect("config");
    let port = free_port();
    let spawned = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--enable-feature=exemplar-storage")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => Some(Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        }),
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "prometheus is required in CI (scripts/install-deps.sh installs it): {e}"
            );
            eprintln!("prometheus not found ({e}); skipping");
            None
        }
    }
}
