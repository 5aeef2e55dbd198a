//! `--charts DIR`: SVG charts of a report, one point per stage: latency percentiles (TTFT,
//! TPOT, inter-token, end-to-end) and throughput.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;

use crate::report::{Report, StageReport};
use crate::stats::Summary;

type Series = (String, Vec<f64>);

/// Picks one latency summary out of a stage.
type Pick = fn(&StageReport) -> Option<&Summary>;

fn line_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    stages: &[String],
    series: &[Series],
) -> anyhow::Result<()> {
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let y_max = series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .fold(0.0_f64, f64::max)
            .max(1e-9)
            * 1.15;
        let n = stages.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5_f64..(n as f64 - 0.5), 0.0_f64..y_max)?;
        let names = stages.to_vec();
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc("stage")
            .y_desc(y_label)
            .draw()?;
        for (i, (name, values)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = values
                .iter()
                .enumerate()
                .map(|(x, &y)| (x as f64, y))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))
}

fn percentiles(stages: &[StageReport], pick: Pick) -> Vec<Series> {
    ["p50", "p90", "p99"]
        .iter()
        .map(|stat| {
            let values = stages
                .iter()
                .map(|s| pick(s).and_then(|x| x.get(stat)).unwrap_or(0.0) * 1000.0)
                .collect();
            ((*stat).to_owned(), values)
        })
        .collect()
}

/// Writes the charts of `report` into `dir` (created if needed); returns the files written.
pub fn write_charts(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the charts directory {}", dir.display()))?;
    let stages: Vec<String> = report.stages.iter().map(|s| s.name.clone()).collect();
    let mut written = Vec::new();
    let latency: [(&str, &str, Pick); 4] = [
        ("ttft", "Time to first token", |s| s.ttft.as_ref()),
        ("tpot", "Time per output token", |s| s.tpot.as_ref()),
        ("itl", "Inter-token latency", |s| s.itl.as_ref()),
        ("e2e", "End-to-end latency", |s| s.e2e.as_ref()),
    ];
    for (file, title, pick) in latency {
        let path = dir.join(format!("latency-{file}.svg"));
        line_chart(
            &path,
            title,
            "ms",
            &stages,
            &percentiles(&report.stages, pick),
        )?;
        written.push(path);
    }
    let path = dir.join("throughput-tokens.svg");
    let series = vec![
        (
            "output tokens/s".to_owned(),
            report
                .stages
                .iter()
                .map(|s| s.output_tokens_per_s)
                .collect(),
        ),
        (
            "input tokens/s".to_owned(),
            report.stages.iter().map(|s| s.input_tokens_per_s).collect(),
        ),
    ];
    line_chart(&path, "Token throughput", "tokens/s", &stages, &series)?;
    written.push(path);
    let path = dir.join("throughput-requests.svg");
    let series = vec![(
        "completed requests/s".to_owned(),
        report.stages.iter().map(|s| s.request_rate).collect(),
    )];
    line_chart(&path, "Request throughput", "requests/s", &stages, &series)?;
    written.push(path);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Outcome;
    use crate::config::{Load, StageSpec, Stop};

    #[test]
    fn charts_are_svg_files_naming_the_stages() {
        let outcome = Outcome {
            ttft: Some(0.1),
            e2e: 1.0,
            itl: vec![0.1; 9],
            output_tokens: 10,
            ..Outcome::default()
        };
        let stages = ["low", "high"]
            .iter()
            .map(|name| {
                let spec = StageSpec {
                    name: (*name).to_owned(),
                    load: Load::Concurrency { concurrency: 1 },
                    stop: Stop::Requests(1),
                };
                StageReport::from_outcomes(&spec, std::slice::from_ref(&outcome), 1.0)
            })
            .collect();
        let report = Report::fixture(stages);
        let scratch = inferd_testkit::temp_dir("bench-charts");
        let dir = scratch.path();
        let files = write_charts(&report, dir).expect("charts");
        assert_eq!(files.len(), 6);
        for file in &files {
            let svg = std::fs::read_to_string(file).expect("read");
            assert!(svg.starts_with("<svg"), "{}", file.display());
            assert!(
                svg.contains("high"),
                "{} lacks the stage name",
                file.display()
            );
        }
    }
}
