//! The SVG picture of a run: msg/s per second over time (for `mixed`, produced and consumed),
//! and below it latency p99 per second where latency is measured.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::progress::TimelinePoint;

const WIDTH: u32 = 1000;
const THROUGHPUT_HEIGHT: u32 = 400;
const LATENCY_HEIGHT: u32 = 300;

pub fn draw(path: &Path, title: &str, timeline: &[TimelinePoint]) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let with_latency = timeline.iter().any(|p| p.p99_us.is_some());
    let height = THROUGHPUT_HEIGHT + if with_latency { LATENCY_HEIGHT } else { 0 };
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, bottom) = root.split_vertically(THROUGHPUT_HEIGHT);
    let t_max = timeline.iter().map(|p| p.t).fold(1.0, f64::max);

    let rate_max = timeline
        .iter()
        .flat_map(|p| [Some(p.msgs_per_sec), p.consumed_msgs_per_sec])
        .flatten()
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..t_max, 0.0..rate_max)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("msg/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| fail(&e))?;
    let consumed: Vec<(f64, f64)> = timeline
        .iter()
        .filter_map(|p| p.consumed_msgs_per_sec.map(|c| (p.t, c)))
        .collect();
    let main_label = if consumed.is_empty() {
        "msg/s"
    } else {
        "produced msg/s"
    };
    chart
        .draw_series(LineSeries::new(
            timeline.iter().map(|p| (p.t, p.msgs_per_sec)),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| fail(&e))?
        .label(main_label)
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    if !consumed.is_empty() {
        chart
            .draw_series(LineSeries::new(consumed, RED.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label("consumed msg/s")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;

    if with_latency {
        let points: Vec<(f64, f64)> = timeline
            .iter()
            .filter_map(|p| p.p99_us.map(|us| (p.t, us as f64 / 1000.0)))
            .collect();
        let ms_max = points.iter().map(|p| p.1).fold(0.001, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&bottom)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..t_max, 0.0..ms_max)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("latency p99 (ms)")
            .draw()
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(LineSeries::new(points, GREEN.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label("p99 latency per second (ms)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], GREEN));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: f64, rate: f64, p99: Option<u64>) -> TimelinePoint {
        TimelinePoint {
            t,
            msgs: (t * rate) as u64,
            msgs_per_sec: rate,
            p99_us: p99,
            consumed_msgs_per_sec: None,
        }
    }

    #[test]
    fn draws_an_svg_file() {
        let dir = std::env::temp_dir().join(format!("broker-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (name, timeline) in [
            (
                "plain.svg",
                vec![point(1.0, 100.0, None), point(2.0, 150.0, None)],
            ),
            (
                "latency.svg",
                vec![point(1.0, 100.0, Some(900)), point(2.0, 90.0, Some(1200))],
            ),
            ("empty.svg", vec![]),
        ] {
            let path = dir.join(name);
            draw(&path, "test", &timeline).expect("drawn");
            let text = std::fs::read_to_string(&path).expect("written");
            assert!(
                text.starts_with("<svg") || text.starts_with("<?xml"),
                "{name}"
            );
            assert!(text.contains("msg/s"), "{name}");
            assert_eq!(text.contains("p99"), name == "latency.svg", "{name}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
