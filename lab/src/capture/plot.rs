//! The throughput-vs-uptime plot: probes as points, the counter-derived RX rate
//! as a line, state transitions as vertical lines. SVG through `plotters`'
//! SVG backend (text is emitted as SVG `<text>`: no system fonts needed, and
//! the output is deterministic, so `lab report` reproduces it byte for byte).

use plotters::prelude::*;

use super::analysis::Analysis;

pub const WIDTH_PX: u32 = 900;
pub const HEIGHT_PX: u32 = 480;

const PROBE_COLOR: RGBColor = RGBColor(31, 119, 180);
const RATE_COLOR: RGBColor = RGBColor(120, 120, 120);
const SCAN_COLOR: RGBColor = RGBColor(255, 127, 14);
const LINK_COLOR: RGBColor = RGBColor(214, 39, 40);
const COLLAPSE_COLOR: RGBColor = RGBColor(148, 103, 189);

/// Renders the plot. `duration_s` sets the x range (at least).
pub fn render_svg(a: &Analysis, duration_s: f64) -> String {
    let mut svg = String::new();
    // Drawing into a String cannot fail for I/O reasons; plotters' errors here
    // would be layout bugs, so they degrade to a note in the SVG, not a panic.
    if let Err(e) = draw(&mut svg, a, duration_s) {
        svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH_PX}\" height=\"40\">\
             <text x=\"10\" y=\"25\">plot failed: {}</text></svg>\n",
            e.to_string().replace('<', "&lt;")
        );
    }
    svg
}

fn draw(svg: &mut String, a: &Analysis, duration_s: f64) -> Result<(), Box<dyn std::error::Error>> {
    let x_max = a
        .probes
        .iter()
        .map(|p| p.end_uptime_s)
        .chain(a.counter_rate.iter().map(|r| r.uptime_s))
        .fold(duration_s, f64::max)
        .max(1.0);
    let y_top = a
        .probes
        .iter()
        .filter_map(|p| p.mib_s)
        .chain(a.counter_rate.iter().map(|r| r.mib_s))
        .fold(0.0, f64::max);
    // headroom above the data for the legend box
    let y_max = if y_top > 0.0 { y_top * 1.6 } else { 1.0 };

    let root = SVGBackend::with_string(svg, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("RX throughput vs uptime (MiB/s)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("uptime (s since boot)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .y_desc("MiB/s (\"MB/s\")")
        .draw()?;

    let vline = |x: f64| vec![(x, 0.0), (x, y_max)];
    for (i, f) in a.scan_failures.iter().enumerate() {
        let s = chart.draw_series(LineSeries::new(vline(f.uptime_s), SCAN_COLOR.mix(0.35)))?;
        if i == 0 {
            s.label("scan failure (thin), first (thick)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], SCAN_COLOR));
        }
    }
    if let Some(t) = a.markers.first_scan_failure_s {
        chart.draw_series(LineSeries::new(vline(t), SCAN_COLOR.stroke_width(3)))?;
    }
    if let Some(e) = &a.markers.first_link_loss {
        chart
            .draw_series(LineSeries::new(
                vline(e.uptime_s),
                LINK_COLOR.stroke_width(2),
            ))?
            .label(format!("first link loss ({})", e.kind))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], LINK_COLOR));
    }
    if let Some(t) = a.markers.first_low_probe_uptime_s {
        chart
            .draw_series(LineSeries::new(vline(t), COLLAPSE_COLOR.stroke_width(2)))?
            .label(format!(
                "first probe < {:.0}% of first",
                a.collapse_fraction * 100.0
            ))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], COLLAPSE_COLOR));
    }
    if !a.counter_rate.is_empty() {
        chart
            .draw_series(LineSeries::new(
                a.counter_rate.iter().map(|r| (r.uptime_s, r.mib_s)),
                RATE_COLOR,
            ))?
            .label("rx_bytes rate between counter snapshots")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RATE_COLOR));
    }
    let points: Vec<(f64, f64)> = a
        .probes
        .iter()
        .filter_map(|p| Some((p.start_uptime_s, p.mib_s?)))
        .collect();
    if !points.is_empty() {
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 5, PROBE_COLOR.filled())),
            )?
            .label("probe (rx_bytes over the push / push time)")
            .legend(|(x, y)| Circle::new((x + 8, y), 5, PROBE_COLOR.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
