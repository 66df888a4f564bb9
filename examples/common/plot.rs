//! SVG figures of the examples (plotters, SVG backend).

use std::path::Path;

use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::report::{RunResult, FIT_LOWER, FIT_UPPER};
use super::AnyResult;

/// Points of one line.
type Points = Vec<(f64, f64)>;
/// Named lines of one panel: (legend, value per width).
pub type Lines = Vec<(String, Vec<f64>)>;

const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

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

/// The line of `losses` inside a log axis whose lower limit is `floor`: it
/// ends where the losses first drop below the floor (at the crossing,
/// interpolated in log space) or stop being finite. plotters would otherwise
/// clamp the points below the axis onto it and draw them along the floor.
fn above_floor(losses: &[f64], floor: f64) -> Points {
    let mut line = Points::new();
    for (t, &l) in losses.iter().enumerate() {
        let t = t as f64;
        if l.is_nan() || l == f64::INFINITY {
            break;
        }
        if l >= floor {
            line.push((t, l));
            continue;
        }
        if let Some(&(t0, l0)) = line.last() {
            // ln(0) = -inf puts the crossing at t0 (a vertical drop).
            let s = (l0.ln() - floor.ln()) / (l0.ln() - l.max(0.0).ln());
            line.push((t0 + s * (t - t0), floor));
        }
        break;
    }
    line
}

/// Length of the legend samples in pixels; with dashes of 6 on, 4 off it
/// shows three dashes.
const LEGEND_LEN: i32 = 26;
/// (dash, gap) in pixels of the NTK prediction lines.
const DASH: (i32, i32) = (6, 4);
/// (dot, gap) in pixels of the rate-fit window lines.
const DOT: (i32, i32) = (2, 3);
const WINDOW_COLOR: RGBColor = RGBColor(150, 150, 150);

/// Log-scale loss against step: a solid line per optimizer (measured), a
/// dashed one (the linearized NTK prediction from H(W_0)), both cut where
/// they leave the plot at the bottom, and dotted grey lines at the edges of
/// the window of loss levels the rates are fitted over.
pub fn loss_svg(path: &Path, title: &str, results: &[RunResult]) -> AnyResult<()> {
    let all = results.iter().flat_map(|r| {
        let measured = r.history.losses().iter().copied().enumerate();
        let predicted = r.predicted_losses.iter().copied().enumerate();
        positive(measured.chain(predicted))
    });
    let (mut lo, mut hi, mut tmax) = (f64::INFINITY, 0.0f64, 1.0f64);
    for (t, l) in all {
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
    let series: Vec<(String, RGBColor, Points, Points)> = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let measured = above_floor(r.history.losses(), lo);
            let predicted = above_floor(&r.predicted_losses, lo);
            (r.label.clone(), COLORS[i % COLORS.len()], measured, predicted)
        })
        .collect();
    // All runs start from the same network, so they share L_0.
    let loss0 = results
        .iter()
        .filter_map(|r| r.history.losses().first().copied())
        .find(|l| l.is_finite() && *l > 0.0);
    let window: Vec<f64> = loss0
        .into_iter()
        .flat_map(|l0| [l0 * FIT_UPPER, l0 * FIT_LOWER])
        .filter(|y| (lo..=hi).contains(y))
        .collect();

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let title = title.char_indices().nth(110).map_or(title, |(i, _)| &title[..i]);
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
    if !window.is_empty() {
        let style = WINDOW_COLOR.stroke_width(1);
        let lines = window
            .iter()
            .map(|&y| DashedPathElement::new(vec![(0.0, y), (tmax, y)], DOT.0, DOT.1, style));
        chart
            .draw_series(lines)
            .map_err(|e| plot_error(path, e))?
            .label(format!("rate-fit window ({FIT_UPPER:.0e} .. {FIT_LOWER:.0e} of L_0)"))
            .legend(move |(x, y)| DashedPathElement::new(vec![(x, y), (x + LEGEND_LEN, y)], DOT.0, DOT.1, style));
    }
    for (name, color, measured, predicted) in series {
        chart
            .draw_series(LineSeries::new(measured, color.stroke_width(2)))
            .map_err(|e| plot_error(path, e))?
            .label(format!("{name} (measured)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + LEGEND_LEN, y)], color.stroke_width(2)));
        chart
            .draw_series(DashedLineSeries::new(predicted, DASH.0, DASH.1, color.stroke_width(1)))
            .map_err(|e| plot_error(path, e))?
            .label(format!("{name} (NTK prediction)"))
            .legend(move |(x, y)| {
                DashedPathElement::new(vec![(x, y), (x + LEGEND_LEN, y)], DASH.0, DASH.1, color.stroke_width(1))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .legend_area_size(LEGEND_LEN + 10)
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
