//! SVG figures of the examples (plotters, SVG backend).

use std::path::Path;

use plotters::prelude::*;

use super::report::RunResult;
use super::{short, AnyResult};

/// Points of one line.
type Points = Vec<(f64, f64)>;
/// Named lines of one panel: (legend, value per width).
pub type Lines = Vec<(String, Vec<f64>)>;

const COLORS: [RGBColor; 3] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44)];

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Box<dyn std::error::Error> {
    format!("cannot draw {}: {e}", path.display()).into()
}

/// Positive finite values only (a log axis cannot show the rest).
fn positive(points: impl Iterator<Item = (usize, f64)>) -> Vec<(f64, f64)> {
    points
        .filter(|(_, l)| l.is_finite() && *l > 0.0)
        .map(|(t, l)| (t as f64, l))
        .collect()
}

/// Log-scale loss against step: a solid line per optimizer (measured) and a
/// dashed one (the linearized NTK prediction from H(W_0)).
pub fn loss_svg(path: &Path, title: &str, results: &[RunResult]) -> AnyResult<()> {
    let series: Vec<(String, RGBColor, Points, Points)> = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let measured = positive(r.history.losses().iter().copied().enumerate());
            let predicted = positive(r.predicted_losses.iter().copied().enumerate());
            (short(r.method), COLORS[i % COLORS.len()], measured, predicted)
        })
        .collect();
    let all = series.iter().flat_map(|s| s.2.iter().chain(s.3.iter()));
    let (mut lo, mut hi, mut tmax) = (f64::INFINITY, 0.0f64, 1.0f64);
    for &(t, l) in all {
        lo = lo.min(l);
        hi = hi.max(l);
        tmax = tmax.max(t);
    }
    if !(lo.is_finite() && hi > 0.0) {
        lo = 1e-12;
        hi = 1.0;
    }
    let lo = lo.max(hi * 1e-16) * 0.5;
    let hi = hi * 2.0;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let title = if title.len() > 110 { &title[..110] } else { title };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 14))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..tmax, (lo..hi).log_scale())
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss (1/2 ||u - y||^2)")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(|e| plot_error(path, e))?;
    for (name, color, measured, predicted) in series {
        chart
            .draw_series(LineSeries::new(measured, color.stroke_width(2)))
            .map_err(|e| plot_error(path, e))?
            .label(format!("{name} (measured)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(DashedLineSeries::new(predicted, 6, 4, color.stroke_width(1)))
            .map_err(|e| plot_error(path, e))?
            .label(format!("{name} (NTK prediction)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))?;
    Ok(())
}

/// One log-log panel per quantity against width.
pub fn sweep_svg(path: &Path, title: &str, widths: &[usize], rows: &[(&str, Lines)]) -> AnyResult<()> {
    let root = SVGBackend::new(path, (1000, 320 * rows.len().max(1) as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let (caption_area, body) = root.split_vertically(24);
    caption_area
        .titled(title, ("sans-serif", 14))
        .map_err(|e| plot_error(path, e))?;
    let panels = body.split_evenly((rows.len(), 1));
    let wmin = *widths.iter().min().unwrap_or(&1) as f64;
    let wmax = *widths.iter().max().unwrap_or(&2) as f64;
    for (panel, (quantity, lines)) in panels.iter().zip(rows) {
        let values = lines
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite() && *v > 0.0);
        let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
        for v in values {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !(lo.is_finite() && hi > 0.0) {
            lo = 1e-6;
            hi = 1.0;
        }
        let mut chart = ChartBuilder::on(panel)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d((wmin * 0.8..wmax * 1.25).log_scale(), (lo * 0.5..hi * 2.0).log_scale())
            .map_err(|e| plot_error(path, e))?;
        chart
            .configure_mesh()
            .x_desc("width m")
            .y_desc(*quantity)
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .map_err(|e| plot_error(path, e))?;
        for (i, (name, vals)) in lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let pts: Vec<(f64, f64)> = widths
                .iter()
                .zip(vals)
                .filter(|(_, v)| v.is_finite() && **v > 0.0)
                .map(|(&w, &v)| (w as f64, v))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| plot_error(path, e))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(|e| plot_error(path, e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_error(path, e))?;
    }
    root.present().map_err(|e| plot_error(path, e))?;
    Ok(())
}
