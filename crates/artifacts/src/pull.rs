//! `inferd pull`: fetch a model into the cache while showing progress on stderr.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{
    Artifact, ArtifactError, ArtifactRequest, ArtifactSource, ArtifactStore, Progress, Sha256Digest,
};

/// How `pull` shows progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullDisplay {
    /// A bar when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// An indicatif progress bar on stderr.
    Bar,
    /// A line on stderr every 10 % (or every 10 s when the size is unknown).
    Lines,
    /// Nothing.
    Quiet,
}

/// Options of [`pull`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullOptions {
    /// The sha256 the file must have.
    pub sha256: Option<Sha256Digest>,
    /// `inferd.model.id` on spans; defaults to the file's stem.
    pub model_id: Option<String>,
    /// Progress display.
    pub display: PullDisplay,
}

/// Fetches `source` (a path, `file://`, `http(s)://` or `s3://`) into the store's cache,
/// showing progress on stderr, and returns the local file.
pub async fn pull(
    store: &ArtifactStore,
    source: &str,
    options: &PullOptions,
) -> Result<Artifact, ArtifactError> {
    let source = ArtifactSource::parse(source)?;
    let model_id = options.model_id.clone().unwrap_or_else(|| {
        let shown = source.display_url();
        let name = shown.rsplit('/').next().unwrap_or(&shown).to_owned();
        Path::new(&name)
            .file_stem()
            .map_or(name.clone(), |s| s.to_string_lossy().into_owned())
    });
    let request = ArtifactRequest::new(model_id, source.clone()).with_sha256(options.sha256);
    let display = match options.display {
        PullDisplay::Auto if std::io::stderr().is_terminal() => PullDisplay::Bar,
        PullDisplay::Auto => PullDisplay::Lines,
        other => other,
    };
    let shown = source.display_url();
    match display {
        PullDisplay::Bar => {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(bar_style());
            bar.set_message(shown);
            let result = store
                .fetch_with_progress(&request, |p| {
                    if let Some(total) = p.total {
                        bar.set_length(total);
                    }
                    bar.set_position(p.done);
                })
                .await;
            bar.finish_and_clear();
            result
        }
        PullDisplay::Lines => {
            let mut lines = LineReporter::new(shown);
            store
                .fetch_with_progress(&request, |p| lines.update(p))
                .await
        }
        PullDisplay::Auto | PullDisplay::Quiet => store.fetch(&request).await,
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg}\n[{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// Plain progress lines for logs and CI: one per 10 % step, or every 10 s without a size.
#[derive(Debug)]
struct LineReporter {
    source: String,
    started: Instant,
    last_step: Option<u64>,
    last_line: Instant,
}

impl LineReporter {
    fn new(source: String) -> Self {
        let now = Instant::now();
        Self {
            source,
            started: now,
            last_step: None,
            last_line: now,
        }
    }

    fn update(&mut self, p: Progress) {
        let due = match p.total {
            Some(total) if total > 0 => {
                let step = p.done.saturating_mul(10) / total;
                let due = self.last_step != Some(step);
                self.last_step = Some(step);
                due
            }
            _ => self.last_line.elapsed() >= Duration::from_secs(10),
        };
        if !due {
            return;
        }
        self.last_line = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = mib(p.done) / secs;
        match p.total {
            Some(total) if total > 0 => eprintln!(
                "pull {}: {:.1} of {:.1} MiB ({}%), {rate:.1} MiB/s",
                self.source,
                mib(p.done),
                mib(total),
                p.done.saturating_mul(100) / total
            ),
            _ => eprintln!(
                "pull {}: {:.1} MiB, {rate:.1} MiB/s",
                self.source,
                mib(p.done)
            ),
        }
    }
}

#[allow(clippy::cast_precision_loss)] // display only
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
