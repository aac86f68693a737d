//! SVG line charts of rates (with their 95% intervals) per strategy, drawn
//! with plotters' SVG backend. Text is left to the viewer's fonts, so no
//! font library is needed.

use plotters::prelude::*;
use saffron_search::StrategyKind;

use crate::EvalError;

/// One point of a series: a rate with its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub low: f64,
    pub high: f64,
}

/// One line of a chart: a strategy's points, drawn in `x` order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The strategy (its colour is the same in every chart).
    pub strategy: StrategyKind,
    /// The legend's label.
    pub label: String,
    pub points: Vec<Point>,
}

/// How the x axis is scaled and labelled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XAxis {
    /// Compute per prompt, log scale.
    Tflop,
    /// Search width, log2 scale with a tick per power of two.
    Width,
    /// Reasoning tokens per answer, log2 scale of `1 + tokens` (0 is the
    /// no-thinking budget), a tick per power of two.
    ReasoningTokens,
}

/// A chart's titles.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x: XAxis,
    pub y_label: &'a str,
}

const SIZE: (u32, u32) = (760, 460);

/// The colour of a strategy, the same in every chart.
fn colour(strategy: StrategyKind) -> RGBColor {
    match strategy {
        StrategyKind::Sample => RGBColor(110, 110, 110),
        StrategyKind::BestOfN => RGBColor(31, 119, 180),
        StrategyKind::Beam => RGBColor(255, 127, 14),
        StrategyKind::Rebase => RGBColor(44, 160, 44),
        StrategyKind::Lookahead => RGBColor(148, 103, 189),
        StrategyKind::Saffron => RGBColor(214, 39, 40),
    }
}

/// Draws `series` as one SVG document.
pub fn line_chart(chart: &Chart, series: &[Series]) -> Result<String, EvalError> {
    let mut svg = String::new();
    draw(&mut svg, chart, series).map_err(|e| EvalError::Report(format!("drawing `{}`: {e}", chart.title)))?;
    Ok(svg)
}

fn draw(svg: &mut String, chart: &Chart, series: &[Series]) -> Result<(), Box<dyn std::error::Error>> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder.caption(chart.title, ("sans-serif", 18)).margin(12).x_label_area_size(44).y_label_area_size(56);
    let y_range = 0f64..1.0;
    match chart.x {
        XAxis::Tflop => {
            let (lo, hi) = points().fold((f64::INFINITY, 0f64), |(lo, hi), p| (lo.min(p.x), hi.max(p.x)));
            let (lo, hi) = if lo.is_finite() && lo > 0.0 { (lo / 1.6, hi * 1.6) } else { (0.01, 10.0) };
            let corner = emptiest_corner(points().map(|p| ((p.x / lo).ln() / (hi / lo).ln(), p.y)));
            let mut ctx = builder.build_cartesian_2d((lo..hi).log_scale(), y_range)?;
            ctx.configure_mesh()
                .x_desc("TFLOP per prompt (log scale)")
                .y_desc(chart.y_label)
                .light_line_style(TRANSPARENT)
                .x_labels(8)
                .x_label_formatter(&|x| format!("{}", significant(*x)))
                .draw()?;
            plot_series(&mut ctx, series, |x| x, corner)?;
        }
        XAxis::Width | XAxis::ReasoningTokens => {
            // Widths are drawn at log2(x); reasoning tokens at log2(1 + x).
            let (shift, description) = match chart.x {
                XAxis::Width => (0.0, "width (log2 scale; no defence at 1)"),
                _ => (1.0, "reasoning tokens (log2 scale of 1 + tokens; no thinking at 0)"),
            };
            let at = move |x: f64| (x + shift).log2();
            let hi = points().fold(1f64, |hi, p| hi.max(at(p.x))).ceil().max(1.0);
            let corner = emptiest_corner(points().map(|p| ((at(p.x) + 0.3) / (hi + 0.6), p.y)));
            let mut ctx = builder.build_cartesian_2d(-0.3f64..hi + 0.3, y_range)?;
            ctx.configure_mesh()
                .x_desc(description)
                .y_desc(chart.y_label)
                .light_line_style(TRANSPARENT)
                .x_labels(hi as usize + 1)
                .x_label_formatter(&|x| format!("{}", 2f64.powf(x.round()) - shift))
                .draw()?;
            plot_series(&mut ctx, series, at, corner)?;
        }
    }
    root.present()?;
    Ok(())
}

/// `x` rounded to two significant digits (log-axis tick labels).
fn significant(x: f64) -> f64 {
    if x <= 0.0 {
        return x;
    }
    let scale = 10f64.powf(x.log10().floor() - 1.0);
    (x / scale).round() * scale
}

/// The corner of the plot with the fewest points near it (points in
/// plot-relative coordinates, 0..1 both ways), for the legend.
fn emptiest_corner(points: impl Iterator<Item = (f64, f64)>) -> SeriesLabelPosition {
    let corners = [
        (SeriesLabelPosition::UpperRight, 1.0, 1.0),
        (SeriesLabelPosition::LowerLeft, 0.0, 0.0),
        (SeriesLabelPosition::LowerRight, 1.0, 0.0),
        (SeriesLabelPosition::UpperLeft, 0.0, 1.0),
    ];
    let mut crowd = [0usize; 4];
    for (x, y) in points {
        for (i, (_, cx, cy)) in corners.iter().enumerate() {
            if (x - cx).abs() < 0.4 && (y - cy).abs() < 0.4 {
                crowd[i] += 1;
            }
        }
    }
    let best = (0..4).min_by_key(|&i| crowd[i]).unwrap_or(0);
    corners[best].0.clone()
}

fn plot_series<'a, X>(
    ctx: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    series: &[Series],
    map_x: impl Fn(f64) -> f64,
    legend: SeriesLabelPosition,
) -> Result<(), Box<dyn std::error::Error>>
where
    X: Ranged<ValueType = f64>,
{
    for s in series {
        let style = colour(s.strategy);
        let mut points = s.points.clone();
        points.sort_by(|a, b| a.x.total_cmp(&b.x));
        let xy: Vec<(f64, f64)> = points.iter().map(|p| (map_x(p.x), p.y)).collect();
        ctx.draw_series(LineSeries::new(xy.clone(), style.stroke_width(2)))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style.stroke_width(2)));
        ctx.draw_series(xy.iter().map(|&p| Circle::new(p, 4, style.filled())))?;
        ctx.draw_series(
            points.iter().map(|p| ErrorBar::new_vertical(map_x(p.x), p.low, p.y, p.high, style.stroke_width(1), 8)),
        )?;
    }
    ctx.configure_series_labels().position(legend).border_style(BLACK).background_style(WHITE.mix(0.85)).draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, xs: &[f64]) -> Series {
        Series {
            strategy: name.parse().unwrap(),
            label: format!("{name} label"),
            points: xs.iter().map(|&x| Point { x, y: 0.5, low: 0.4, high: 0.6 }).collect(),
        }
    }

    #[test]
    fn charts_are_svg_with_title_legend_and_one_marker_per_point() {
        let data = [series("best-of-n", &[0.4, 1.1, 2.4]), series("saffron", &[0.2, 0.5])];
        for x in [XAxis::Tflop, XAxis::Width] {
            let svg = line_chart(&Chart { title: "ASR against compute", x, y_label: "ASR" }, &data).unwrap();
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
            assert!(
                svg.contains("ASR against compute") && svg.contains("best-of-n label") && svg.contains("saffron label")
            );
            assert!(svg.contains("#1F77B4") && svg.contains("#D62728"), "each strategy in its colour");
            // Five data points: five filled circles (the legend uses lines;
            // plotters outlines each filled circle in a second element).
            let filled = svg.lines().filter(|l| l.starts_with("<circle") && !l.contains("fill=\"none\"")).count();
            assert_eq!(filled, 5, "{svg}");
        }
        assert_eq!(significant(0.123456), 0.12);
        let high_left = [(0.1, 0.9), (0.2, 0.95), (0.9, 0.9)];
        assert!(matches!(emptiest_corner(high_left.into_iter()), SeriesLabelPosition::LowerLeft));
        let low = [(0.1, 0.1), (0.9, 0.05)];
        assert!(matches!(emptiest_corner(low.into_iter()), SeriesLabelPosition::UpperRight));
        assert_eq!(significant(2.0), 2.0);
        let empty = line_chart(&Chart { title: "nothing", x: XAxis::Tflop, y_label: "ASR" }, &[]).unwrap();
        assert!(empty.contains("nothing"));
    }
}
