//! `inferd bench compare A.json B.json`: the difference of every figure, stage by stage.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::report::{Report, StageReport};
use crate::stats::Summary;

/// Reads a report written by `inferd bench --output`.
pub fn read_report(path: &Path) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the report {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not an inferd bench report (schema version 1)",
            path.display()
        )
    })
}

/// One figure of one stage in both reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// Stage name (the baseline's).
    pub stage: String,
    /// Figure, e.g. `ttft.p50` or `output_tokens_per_s`.
    pub figure: String,
    /// Value in the baseline.
    pub baseline: Option<f64>,
    /// Value in the candidate.
    pub candidate: Option<f64>,
}

impl Difference {
    /// `(candidate − baseline) / baseline` in percent, when both exist and the baseline ≠ 0.
    pub fn percent(&self) -> Option<f64> {
        match (self.baseline, self.candidate) {
            (Some(a), Some(b)) if a != 0.0 => Some((b - a) / a * 100.0),
            _ => None,
        }
    }
}

fn stage_differences(a: &StageReport, b: &StageReport) -> Vec<Difference> {
    let mut out = Vec::new();
    for ((name, x), (_, y)) in a.scalars().into_iter().zip(b.scalars()) {
        out.push(Difference {
            stage: a.name.clone(),
            figure: name.to_owned(),
            baseline: Some(x),
            candidate: Some(y),
        });
    }
    for ((name, x), (_, y)) in a.latencies().into_iter().zip(b.latencies()) {
        for stat in Summary::STATS {
            out.push(Difference {
                stage: a.name.clone(),
                figure: format!("{name}.{stat}"),
                baseline: x.and_then(|s| s.get(stat)),
                candidate: y.and_then(|s| s.get(stat)),
            });
        }
    }
    out
}

/// Every figure of the stages both reports have, matched by position.
pub fn differences(a: &Report, b: &Report) -> Vec<Difference> {
    a.stages
        .iter()
        .zip(&b.stages)
        .flat_map(|(x, y)| stage_differences(x, y))
        .collect()
}

fn value(v: Option<f64>, latency: bool) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if latency => format!("{:.2} ms", v * 1000.0),
        Some(v) => format!("{v:.2}"),
    }
}

/// The text `inferd bench compare` prints.
pub fn render(a: &Report, b: &Report, a_name: &str, b_name: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "baseline:  {a_name} ({} {})", a.url, a.model);
    let _ = writeln!(out, "candidate: {b_name} ({} {})", b.url, b.model);
    if a.stages.len() != b.stages.len() {
        let _ = writeln!(
            out,
            "note: {} stages vs {}; comparing the first {}",
            a.stages.len(),
            b.stages.len(),
            a.stages.len().min(b.stages.len())
        );
    }
    let mut stage = String::new();
    for d in differences(a, b) {
        if d.stage != stage {
            stage.clone_from(&d.stage);
            let _ = writeln!(
                out,
                "\nstage {stage}\n  {:<26}{:>14}{:>14}{:>10}",
                "figure", "baseline", "candidate", "change"
            );
        }
        let latency = d.figure.contains('.');
        let change = d
            .percent()
            .map_or_else(|| "-".to_owned(), |p| format!("{p:+.1}%"));
        let _ = writeln!(
            out,
            "  {:<26}{:>14}{:>14}{:>10}",
            d.figure,
            value(d.baseline, latency),
            value(d.candidate, latency),
            change
        );
    }
    out
}

/// Runs `inferd bench compare`.
pub fn run(args: &crate::args::CompareArgs) -> anyhow::Result<()> {
    let a = read_report(&args.baseline)?;
    let b = read_report(&args.candidate)?;
    print!(
        "{}",
        render(
            &a,
            &b,
            &args.baseline.display().to_string(),
            &args.candidate.display().to_string()
        )
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Outcome;
    use crate::config::{Load, StageSpec, Stop};

    fn report(ttft: f64, duration: f64) -> Report {
        let spec = StageSpec {
            name: "one".into(),
            load: Load::Concurrency { concurrency: 1 },
            stop: Stop::Requests(1),
        };
        let outcome = Outcome {
            ttft: Some(ttft),
            e2e: 1.0,
            output_tokens: 10,
            ..Outcome::default()
        };
        Report::fixture(vec![StageReport::from_outcomes(
            &spec,
            &[outcome],
            duration,
        )])
    }

    #[test]
    fn differences_cover_every_figure_with_percent_change() {
        let a = report(0.2, 2.0);
        let b = report(0.1, 1.0);
        let diffs = differences(&a, &b);
        let get = |f: &str| {
            diffs
                .iter()
                .find(|d| d.figure == f)
                .unwrap_or_else(|| panic!("{f} missing"))
        };
        assert_eq!(get("ttft.p50").percent(), Some(-50.0));
        assert_eq!(get("output_tokens_per_s").percent(), Some(100.0));
        assert_eq!(get("failed").percent(), None);
        assert_eq!(diffs.len(), 9 + 5 * 7);
        let text = render(&a, &b, "a.json", "b.json");
        assert!(text.contains("ttft.p50"), "{text}");
        assert!(text.contains("-50.0%"), "{text}");
        assert!(text.contains("+100.0%"), "{text}");
    }

    #[test]
    fn a_file_that_is_not_a_report_is_refused_by_name() {
        let path = std::env::temp_dir().join(format!("not-a-report-{}.json", std::process::id()));
        std::fs::write(&path, "{\"hello\": 1}").expect("write");
        let err = read_report(&path).expect_err("accepted");
        assert!(
            err.to_string().contains("not an inferd bench report"),
            "{err}"
        );
        let _ = std::fs::remove_file(path);
    }
}
