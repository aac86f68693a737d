//! `report.html`: one self-contained page (inline SVG and CSS, no scripts,
//! no network), rendered from `report.html.j2` with minijinja.

use minijinja::{context, Environment, Value};
use serde::Serialize;

use super::{BudgetTable, Figure, VersusBestOfN, WidthTrend, BUDGET_TOLERANCE};
use crate::metrics::Rate;
use crate::summary::CellSummary;
use crate::EvalError;

const TEMPLATE: &str = include_str!("report.html.j2");

pub(crate) struct PageData<'a> {
    pub run: &'a serde_json::Value,
    pub records: usize,
    pub judges: &'a [String],
    pub summaries: &'a [CellSummary],
    pub tables: &'a [(String, BudgetTable)],
    pub comparisons: &'a [(String, Vec<VersusBestOfN>)],
    pub width_trends: &'a [(String, Vec<WidthTrend>)],
    pub figures: &'a [Figure],
}

#[derive(Serialize)]
struct TableView {
    group: String,
    budget: String,
    rows: Vec<Vec<String>>,
}

#[derive(Serialize)]
struct FigureView {
    caption: String,
    file: String,
    svg: Value,
}

fn rate(r: Option<&Rate>) -> String {
    r.map_or("–".into(), Rate::to_string)
}

fn logprob(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{x:.2}"))
}

fn width(w: Option<usize>) -> String {
    w.map_or("–".into(), |w| w.to_string())
}

pub(crate) fn render(data: &PageData) -> Result<String, EvalError> {
    let tables: Vec<TableView> = data
        .tables
        .iter()
        .map(|(group, t)| TableView {
            group: group.clone(),
            budget: format!("{:.3} TFLOP per prompt, from {}", t.budget_tflop, t.budget_from),
            rows: t
                .rows
                .iter()
                .map(|r| {
                    let mut row = vec![
                        r.defence.clone(),
                        width(r.cell.width),
                        format!("{:.3}{}", r.cell.mean_tflop, if r.within_budget { "" } else { " (over)" }),
                        format!("{:.1}", r.cell.mean_reward_calls),
                    ];
                    row.extend(data.judges.iter().map(|j| rate(r.cell.asr.get(j))));
                    row.push(r.efficiency.map_or("–".into(), |e| format!("{e:.2}")));
                    row.push(rate(r.over_refusal.as_ref()));
                    row.push(logprob(r.cell.mean_logprob));
                    row.push(logprob(r.benign_logprob));
                    row
                })
                .collect(),
        })
        .collect();
    let comparisons: Vec<(String, Vec<Vec<String>>)> = data
        .comparisons
        .iter()
        .map(|(group, rows)| (group.clone(), rows.iter().map(|r| comparison_row(r, &data.judges[0])).collect()))
        .collect();
    let width_trends: Vec<(String, Vec<Vec<String>>)> = data
        .width_trends
        .iter()
        .map(|(group, rows)| (group.clone(), rows.iter().map(|r| trend_row(r, &data.judges[0])).collect()))
        .collect();
    let cells: Vec<Vec<String>> = data
        .summaries
        .iter()
        .map(|s| {
            let mut row = vec![
                s.cell.clone(),
                s.prompts.to_string(),
                format!("{:.3}", s.mean_tflop),
                {
                    let m = s.mean_tflop_by_model;
                    format!("{:.3} / {:.3} / {:.3}", m.policy, m.prm, m.mrm)
                },
                format!("{:.1}", s.mean_reward_calls),
                format!("{:.1}", s.mean_new_tokens),
                format!("{:.1}", s.mean_wall_seconds),
            ];
            row.extend(data.judges.iter().map(|j| rate(s.asr.get(j))));
            row.push(rate(s.over_refusal.as_ref()));
            row.extend(data.judges.iter().map(|j| rate(s.benign_flagged.get(j))));
            row.push(logprob(s.mean_logprob));
            row
        })
        .collect();
    let figures: Vec<FigureView> = data
        .figures
        .iter()
        .map(|f| FigureView {
            caption: f.caption.clone(),
            file: f.file.clone(),
            // Our own plotters output; everything else on the page is escaped.
            svg: Value::from_safe_string(f.svg.clone()),
        })
        .collect();
    let run = data.run;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    let map = |v: &serde_json::Value| -> Vec<(String, String)> {
        v.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect()).unwrap_or_default()
    };
    let mut env = Environment::new();
    env.add_template("report.html", TEMPLATE).map_err(|e| EvalError::Report(format!("report template: {e}")))?;
    let template = env.get_template("report.html").map_err(|e| EvalError::Report(e.to_string()))?;
    template
        .render(context! {
            policy => text(&run["grid"]["policy"]),
            policy_sha256 => text(&run["policy_sha256"]),
            version => text(&run["saffron_version"]),
            reward_models => map(&run["reward_models"]),
            data_files => map(&run["data_files"]),
            grid => serde_json::to_string_pretty(&run["grid"]).unwrap_or_default(),
            records => data.records,
            judges => data.judges,
            headline => &data.judges[0],
            tolerance => format!("{:.0}%", (BUDGET_TOLERANCE - 1.0) * 100.0),
            tables => tables,
            comparisons => comparisons,
            width_trends => width_trends,
            cells => cells,
            figures => figures,
        })
        .map_err(|e| EvalError::Report(format!("rendering report.html: {e}")))
}

/// Defence, width, TFLOP, Best-of-N width and TFLOP, both ASRs on the
/// headline judge, and the paired difference.
fn comparison_row(r: &VersusBestOfN, headline: &str) -> Vec<String> {
    vec![
        r.defence.clone(),
        width(r.cell.width),
        format!("{:.3}", r.cell.mean_tflop),
        width(r.best_of_n.width),
        format!("{:.3}{}", r.best_of_n.mean_tflop, if r.best_of_n_spends_more { "" } else { " (less)" }),
        rate(r.cell.asr.get(headline)),
        rate(r.best_of_n.asr.get(headline)),
        format!("{} (n = {})", r.difference, r.difference.n),
    ]
}

/// Search, narrowest and widest width with their TFLOP and ASR on the
/// headline judge, and the paired difference.
fn trend_row(r: &WidthTrend, headline: &str) -> Vec<String> {
    vec![
        r.defence.clone(),
        format!("{} ({:.3} TFLOP)", width(r.narrowest.width), r.narrowest.mean_tflop),
        rate(r.narrowest.asr.get(headline)),
        format!("{} ({:.3} TFLOP)", width(r.widest.width), r.widest.mean_tflop),
        rate(r.widest.asr.get(headline)),
        format!("{} (n = {})", r.difference, r.difference.n),
    ]
}
