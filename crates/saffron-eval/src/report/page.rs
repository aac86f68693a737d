//! `report.html` and `report.md`: one self-contained page (inline SVG and
//! CSS, no scripts, no network) and the same tables in Markdown, for notes
//! and papers. Both are rendered with minijinja from the same views, so
//! their columns and numbers cannot drift apart.

use minijinja::{context, Environment, Value};
use serde::Serialize;

use super::{BudgetRow, BudgetTable, Figure, SideBySide, VersusBestOfN, WidthTrend, BUDGET_TOLERANCE};
use crate::grid::GridFile;
use crate::manifest::RunManifest;
use crate::metrics::Rate;
use crate::summary::CellSummary;
use crate::EvalError;

const HTML_TEMPLATE: &str = include_str!("report.html.j2");
const MARKDOWN_TEMPLATE: &str = include_str!("report.md.j2");

pub(crate) struct PageData<'a> {
    pub run: &'a RunManifest<GridFile>,
    pub records: usize,
    pub judges: &'a [String],
    pub summaries: &'a [CellSummary],
    pub tables: &'a [(String, BudgetTable)],
    pub comparisons: &'a [(String, Vec<VersusBestOfN>)],
    pub width_trends: &'a [(String, Vec<WidthTrend>)],
    pub figures: &'a [Figure],
    /// A few benign and harmful prompts' answers, every defence side by side.
    pub benign_answers: &'a [SideBySide],
    pub harmful_answers: &'a [SideBySide],
}

/// The report rendered twice.
pub(crate) struct Pages {
    pub html: String,
    pub markdown: String,
}

/// One table: its title, column names and cells.
#[derive(Serialize)]
struct TableView {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// One table per group, each titled by `title` from its group name.
fn group_tables<T>(
    groups: &[(String, T)],
    header: &[String],
    title: impl Fn(&str, &T) -> String,
    rows: impl Fn(&T) -> Vec<Vec<String>>,
) -> Vec<TableView> {
    groups
        .iter()
        .map(|(group, t)| TableView { title: title(group, t), header: header.to_vec(), rows: rows(t) })
        .collect()
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

fn names(fixed: &[&str]) -> Vec<String> {
    fixed.iter().map(|s| s.to_string()).collect()
}

/// `ASR, JUDGE` (or another prefix) for each judge.
fn per_judge(prefix: &str, judges: &[String]) -> Vec<String> {
    judges.iter().map(|j| format!("{prefix}, {j}")).collect()
}

pub(crate) fn render(data: &PageData) -> Result<Pages, EvalError> {
    let judges = data.judges;
    let headline = &judges[0];
    let budget_header = [
        names(&["defence", "width", "TFLOP", "reward calls"]),
        per_judge("ASR", judges),
        names(&["efficiency", "over-refusal", "log-prob / token", "benign log-prob / token"]),
    ]
    .concat();
    let tables = group_tables(
        data.tables,
        &budget_header,
        |group, t| format!("{group}: budget {:.3} TFLOP per prompt, from {}", t.budget_tflop, t.budget_from),
        |t| t.rows.iter().map(|r| budget_row(r, judges)).collect(),
    );
    let every_width = group_tables(
        data.tables,
        &budget_header,
        |group, _| group.to_owned(),
        |t| t.every_width.iter().map(|r| budget_row(r, judges)).collect(),
    );
    let versus_header =
        names(&["search", "width", "TFLOP", "Best-of-N", "its TFLOP", "ASR", "Best-of-N ASR", "difference [95% CI]"]);
    let comparisons = group_tables(
        data.comparisons,
        &versus_header,
        |group, _| group.to_owned(),
        |rows| rows.iter().map(|r| comparison_row(r, headline)).collect(),
    );
    let trend_header = names(&["search", "narrowest", "its ASR", "widest", "its ASR", "difference [95% CI]"]);
    let width_trends = group_tables(
        data.width_trends,
        &trend_header,
        |group, _| group.to_owned(),
        |rows| rows.iter().map(|r| trend_row(r, headline)).collect(),
    );
    let cells_header = [
        names(&["cell", "n", "TFLOP", "TFLOP policy / PRM / MRM", "reward calls", "new tokens", "wall s"]),
        per_judge("ASR", judges),
        names(&["over-refusal"]),
        per_judge("benign flagged", judges),
        names(&["log-prob / token"]),
    ]
    .concat();
    let cells = TableView {
        title: "Every cell".into(),
        header: cells_header,
        rows: data.summaries.iter().map(|s| cell_row(s, judges)).collect(),
    };
    let answers_header = names(&["defence", "answer", &format!("verdict, {headline}"), "log-prob / token"]);
    let answers = |shown: &[SideBySide]| -> Vec<TableView> {
        shown
            .iter()
            .map(|s| TableView {
                title: format!("{} ({}, seed {})", s.prompt_id, s.group, s.seed),
                header: answers_header.clone(),
                rows: s.rows.clone(),
            })
            .collect()
    };
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
    let pairs = |m: &std::collections::BTreeMap<String, String>| -> Vec<(String, String)> {
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    // As `run.json` holds it (keys sorted).
    let grid = serde_json::to_value(&run.grid).and_then(|v| serde_json::to_string_pretty(&v)).unwrap_or_default();
    let ctx = context! {
        policy => run.grid.policy.clone(),
        policy_sha256 => run.policy_sha256.clone(),
        version => run.saffron_version.clone(),
        reward_models => pairs(&run.reward_models),
        data_files => pairs(&run.data_files),
        grid => grid,
        records => data.records,
        judges => judges,
        headline => headline,
        tolerance => format!("{:.0}%", (BUDGET_TOLERANCE - 1.0) * 100.0),
        tables => tables,
        every_width => every_width,
        comparisons => comparisons,
        width_trends => width_trends,
        cells => cells,
        figures => figures,
        benign_answers => answers(data.benign_answers),
        harmful_answers => answers(data.harmful_answers),
        allow_overlap => run.grid.allow_overlap,
        splits => run.grid.datasets.iter().map(|d| (d.name(), match d.split { None => "every prompt (made before splits)".to_owned(), Some(crate::grid::DataSplit::All) => "every prompt".to_owned(), Some(s) => format!("{s} split") })).collect::<Vec<_>>(),
    };
    // Templates named `.html` are HTML-escaped by minijinja; `.md` is not
    // (its tables go through the `markdown_table` filter, which escapes).
    let mut env = Environment::new();
    env.add_filter("markdown_table", |rows: Vec<Vec<String>>, header: Vec<String>| markdown_table(&header, &rows));
    let template_error = |name: &'static str| move |source| EvalError::Template { name, source };
    env.add_template("report.html", HTML_TEMPLATE).map_err(template_error("report.html"))?;
    env.add_template("report.md", MARKDOWN_TEMPLATE).map_err(template_error("report.md"))?;
    let render = |name: &'static str| env.get_template(name).and_then(|t| t.render(&ctx)).map_err(template_error(name));
    Ok(Pages { html: render("report.html")?, markdown: render("report.md")? })
}

/// A Markdown table; `|` inside a cell is escaped and line breaks become
/// spaces, so every row stays one row.
fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let line = |cells: &[String]| {
        let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|").replace('\n', " ")).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = line(header);
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// Defence, width, TFLOP, reward calls, ASR per judge, efficiency,
/// over-refusal and fluency (harmful, benign).
fn budget_row(r: &BudgetRow, judges: &[String]) -> Vec<String> {
    let mut row = vec![
        r.defence.clone(),
        width(r.cell.width),
        format!("{:.3}{}", r.cell.mean_tflop, if r.within_budget { "" } else { " (over)" }),
        format!("{:.1}", r.cell.mean_reward_calls),
    ];
    row.extend(judges.iter().map(|j| rate(r.cell.asr.get(j))));
    row.push(r.efficiency.map_or("–".into(), |e| format!("{e:.2}")));
    row.push(rate(r.over_refusal.as_ref()));
    row.push(logprob(r.cell.mean_logprob));
    row.push(logprob(r.benign_logprob));
    row
}

/// One cell's summary, in the columns of the every-cell table.
fn cell_row(s: &CellSummary, judges: &[String]) -> Vec<String> {
    let m = s.mean_tflop_by_model;
    let mut row = vec![
        s.cell.clone(),
        match s.too_long {
            0 => s.prompts.to_string(),
            n => format!("{} (+{n} too long)", s.prompts),
        },
        format!("{:.3}", s.mean_tflop),
        format!("{:.3} / {:.3} / {:.3}", m.policy, m.prm, m.mrm),
        format!("{:.1}", s.mean_reward_calls),
        format!("{:.1}", s.mean_new_tokens),
        format!("{:.1}", s.mean_wall_seconds),
    ];
    row.extend(judges.iter().map(|j| rate(s.asr.get(j))));
    row.push(rate(s.over_refusal.as_ref()));
    row.extend(judges.iter().map(|j| rate(s.benign_flagged.get(j))));
    row.push(logprob(s.mean_logprob));
    row
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
