//! The PNG chart: latency percentiles and deliveries per second over the run, or the
//! server's memory over the run when nothing was published.

use std::path::Path;

use anyhow::{anyhow, Context};
use plotters::prelude::*;

use super::Report;

pub fn draw(r: &Report, path: &Path, font: &Path) -> anyhow::Result<()> {
    // plotters draws text only with a registered font; the bytes must live for the process.
    let bytes = std::fs::read(font)
        .with_context(|| format!("chart font {} (pass --font)", font.display()))?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(bytes.into_boxed_slice()),
    )
    .map_err(|_| anyhow!("{} is not a usable TrueType font", font.display()))?;
    let root = BitMapBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(350);
    let title = format!(
        "{} {:?}, {} connections",
        r.label, r.scenario, r.connections
    );
    if r.series.is_empty() {
        memory(r, &root, &title)?;
    } else {
        latency(r, &top, &title)?;
        throughput(r, &bottom)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn x_range(r: &Report) -> std::ops::Range<f64> {
    let lo = r.series.first().map_or(0.0, |p| p.t).floor();
    let hi = r.series.last().map_or(1.0, |p| p.t).ceil() + 1.0;
    lo..hi
}

fn latency(r: &Report, area: &Area<'_>, title: &str) -> anyhow::Result<()> {
    let y_max = r.series.iter().map(|p| p.p99_ms).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{title}: delivery latency"), ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range(r), 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("ms")
        .draw()
        .map_err(err)?;
    for (name, color, pick) in [
        (
            "p50",
            BLUE,
            (|p: &super::Point| p.p50_ms) as fn(&super::Point) -> f64,
        ),
        ("p99", RED, |p: &super::Point| p.p99_ms),
    ] {
        chart
            .draw_series(LineSeries::new(
                r.series.iter().map(|p| (p.t, pick(p))),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn throughput(r: &Report, area: &Area<'_>) -> anyhow::Result<()> {
    let y_max = r.series.iter().map(|p| p.delivered).max().unwrap_or(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("deliveries per second", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range(r), 0.0..y_max.max(1.0))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            r.series.iter().map(|p| (p.t, p.delivered as f64)),
            GREEN.stroke_width(2),
        ))
        .map_err(err)?;
    Ok(())
}

fn memory(r: &Report, area: &Area<'_>, title: &str) -> anyhow::Result<()> {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let y_max = r
        .server_samples
        .iter()
        .map(|s| mib(s.rss_bytes))
        .fold(1.0, f64::max)
        * 1.1;
    let x_max = r.server_samples.last().map_or(1.0, |s| s.at).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{title}: server RSS"), ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("MiB")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            r.server_samples.iter().map(|s| (s.at, mib(s.rss_bytes))),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?;
    Ok(())
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("chart: {e:?}")
}
