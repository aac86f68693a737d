//! `saffron report RUN_DIR`: the summaries, SVG plots and one
//! self-contained `report.html` of a run directory made by `saffron eval`.
//!
//! - `summary.json` / `summary.csv`: one row per cell, plus pooled rows over
//!   all harmful (and all benign) sets when there are several;
//! - `report/*.svg`: ASR against TFLOP and against width per harmful group
//!   (a dataset under an attack, and the pool), over-refusal against TFLOP;
//! - `report.html`: the plots inline, the paper-style table at Best-of-32's
//!   budget per group, each search against Best-of-N at equal compute and
//!   its widest width against its narrowest (paired differences), every
//!   cell, and the run's provenance. No network;
//! - `report.md`: the same tables in Markdown, the plots linked.

mod answers;
mod budget_table;
mod page;
mod paired;
mod plots;

use std::path::{Path, PathBuf};

pub use answers::{side_by_side, SideBySide};
pub use budget_table::{at_budget, BudgetRow, BudgetTable, BUDGET_TOLERANCE, DEFENCES};
pub use paired::{outcomes, versus_best_of_n, width_trends, Outcomes, VersusBestOfN, WidthTrend};
pub use plots::{line_chart, Chart, Point, Series, XAxis};

use crate::experiment::Record;
use crate::fluency::read_fluency;
use crate::grid::GridFile;
use crate::manifest::RunManifest;
use crate::metrics::Rate;
use crate::reasoning_study::{self, ReasoningStudy};
use crate::store::{read_records, RECORDS_FILE};
use crate::summary::{pooled, summarise, CellSummary};
use crate::EvalError;

/// What `write_report` wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub plots: Vec<PathBuf>,
    pub summaries: Vec<CellSummary>,
    /// The run's judges, headline first.
    pub judges: Vec<String>,
    /// The paper-style table of each harmful group, by group name.
    pub tables: Vec<(String, BudgetTable)>,
    /// Each search against Best-of-N at equal compute, by group name.
    pub comparisons: Vec<(String, Vec<VersusBestOfN>)>,
    /// Each search's widest width against its narrowest, by group name.
    pub width_trends: Vec<(String, Vec<WidthTrend>)>,
    /// Whether the grid let its prompts overlap its artifacts' training.
    pub allow_overlap: bool,
    /// With a reasoning axis: the study (also in `reasoning-study.json`,
    /// and as a section of `report.md`).
    pub reasoning: Option<ReasoningStudy>,
}

/// A figure of the report.
pub(crate) struct Figure {
    pub file: String,
    pub caption: String,
    pub svg: String,
}

/// Harmful cells of one dataset under one attack.
pub(crate) struct Group<'a> {
    pub name: String,
    pub cells: Vec<&'a CellSummary>,
}

/// Reads the run in `dir` and writes its summaries, plots and page.
pub fn write_report(dir: &Path) -> Result<ReportFiles, EvalError> {
    let run: RunManifest<GridFile> = RunManifest::read(dir)?;
    let records_path = dir.join(RECORDS_FILE);
    let mut records = read_records::<Record>(&records_path)?;
    attach_fluency(dir, &mut records)?;
    if records.is_empty() {
        return Err(EvalError::Report(format!(
            "{} has no records yet; run `saffron eval` on its grid first",
            records_path.display()
        )));
    }
    let judges = judges_of(&run, &records)?;
    let headline = judges[0].clone();

    let pooled_records = pooled(&records);
    let mut summaries = summarise(&records, &judges)?;
    summaries.extend(summarise(&pooled_records, &judges)?);
    let mut unsafe_by_cell = outcomes(&records, &headline);
    unsafe_by_cell.extend(outcomes(&pooled_records, &headline));
    crate::summary::write(dir, &summaries, &judges)?;

    let harmful_groups = harmful_groups(&summaries);
    let benign: Vec<&CellSummary> = benign_cells(&summaries);
    let mut figures = Vec::new();
    let mut tables = Vec::new();
    let mut comparisons = Vec::new();
    let mut trends = Vec::new();
    for group in &harmful_groups {
        figures.extend(group_figures(group, &headline)?);
        if let Some(table) = at_budget(&group.cells, &benign, &headline) {
            tables.push((group.name.clone(), table));
        }
        let rows = versus_best_of_n(&group.cells, &unsafe_by_cell);
        if !rows.is_empty() {
            comparisons.push((group.name.clone(), rows));
        }
        let rows = width_trends(&group.cells, &unsafe_by_cell);
        if !rows.is_empty() {
            trends.push((group.name.clone(), rows));
        }
    }
    if !benign.is_empty() {
        let series = series_of(&benign, |c| Some(point(c.mean_tflop, c.over_refusal?)));
        let svg = line_chart(
            &Chart {
                title: "Over-refusal on benign prompts against compute",
                x: XAxis::Tflop,
                y_label: "over-refusal",
            },
            &series,
        )?;
        figures.push(Figure {
            file: "over-refusal-tflop.svg".into(),
            caption: format!(
                "Over-refusal (refusal strings) on {} against mean TFLOP per prompt, 95% bootstrap intervals.",
                benign[0].dataset
            ),
            svg,
        });
    }

    // The PRM's scores of the answers, where the run judged with it too.
    let prm = saffron_reward::GuardSpec::parse(&run.grid.guard, None)
        .ok()
        .map(|g| saffron_reward::JudgeSpec::Guard(g).to_string())
        .filter(|name| judges.contains(name));
    let reasoning = records
        .iter()
        .any(|r| r.reasoning.is_some())
        .then(|| reasoning_study::study(&records, &headline, prm.as_deref()));
    if let Some(study) = &reasoning {
        figures.extend(reasoning_figures(study)?);
        let path = dir.join("reasoning-study.json");
        let json = serde_json::to_string_pretty(study)
            .map_err(|e| EvalError::malformed(&path.display().to_string(), "a reasoning study", e))?;
        std::fs::write(&path, json).map_err(EvalError::io("write", &path))?;
    }

    let plot_dir = dir.join("report");
    std::fs::create_dir_all(&plot_dir).map_err(EvalError::io("create", &plot_dir))?;
    let mut plots = Vec::new();
    for f in &figures {
        let path = plot_dir.join(&f.file);
        std::fs::write(&path, &f.svg).map_err(EvalError::io("write", &path))?;
        plots.push(path);
    }
    let pages = page::render(&page::PageData {
        run: &run,
        records: records.len(),
        judges: &judges,
        summaries: &summaries,
        tables: &tables,
        comparisons: &comparisons,
        width_trends: &trends,
        figures: &figures,
        benign_answers: &side_by_side(&records, false, &headline),
        harmful_answers: &side_by_side(&records, true, &headline),
    })?;
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, pages.html).map_err(EvalError::io("write", &html_path))?;
    let markdown_path = dir.join("report.md");
    let mut markdown = pages.markdown;
    if let Some(study) = &reasoning {
        markdown.push('\n');
        markdown.push_str(&reasoning_study::markdown(study, &run.grid.policy));
    }
    std::fs::write(&markdown_path, markdown).map_err(EvalError::io("write", &markdown_path))?;
    Ok(ReportFiles {
        html: html_path,
        markdown: markdown_path,
        plots,
        summaries,
        judges,
        tables,
        comparisons,
        width_trends: trends,
        allow_overlap: run.grid.allow_overlap,
        reasoning,
    })
}

/// Sets each record's fluency from the run's `fluency.jsonl`, if scored.
fn attach_fluency(dir: &Path, records: &mut [Record]) -> Result<(), EvalError> {
    let scored: std::collections::HashMap<(String, String), Option<f64>> =
        read_fluency(dir)?.into_iter().map(|f| ((f.cell, f.prompt_id), f.mean_logprob)).collect();
    for r in records.iter_mut() {
        r.fluency = scored.get(&(r.cell.clone(), r.prompt_id.clone())).copied().flatten();
    }
    Ok(())
}

/// The run's judges, headline first: from its grid, else from the records.
fn judges_of(run: &RunManifest<GridFile>, records: &[Record]) -> Result<Vec<String>, EvalError> {
    let mut judges = run.grid.judges.clone();
    if judges.is_empty() {
        let seen: std::collections::BTreeSet<&String> = records.iter().flat_map(|r| r.verdicts.keys()).collect();
        judges = seen.into_iter().cloned().collect();
    }
    if judges.is_empty() {
        return Err(EvalError::Report("the run names no judges and its records hold no verdicts".into()));
    }
    Ok(judges)
}

/// Harmful cells grouped by (dataset, attack), in order of appearance; in
/// a run with a reasoning axis also by budget and monitor action, so that
/// defences are compared at the same reasoning.
fn harmful_groups(summaries: &[CellSummary]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group> = Vec::new();
    for s in summaries.iter().filter(|s| !s.asr.is_empty()) {
        let mut name = format!("{}, {}", s.dataset, s.attack);
        for part in s.cell.split('|').filter(|p| p.starts_with("think") || p.starts_with("monitor-")) {
            name.push_str(", ");
            name.push_str(part);
        }
        match groups.iter_mut().find(|g| g.name == name) {
            Some(g) => g.cells.push(s),
            None => groups.push(Group { name, cells: vec![s] }),
        }
    }
    groups
}

/// Benign cells for over-refusal: the pool over all benign sets when there
/// are several, else the one set's cells.
fn benign_cells(summaries: &[CellSummary]) -> Vec<&CellSummary> {
    let benign: Vec<&CellSummary> = summaries.iter().filter(|s| s.over_refusal.is_some()).collect();
    let pooled: Vec<&CellSummary> =
        benign.iter().copied().filter(|s| s.dataset == crate::summary::POOLED_BENIGN).collect();
    if pooled.is_empty() {
        benign
    } else {
        pooled
    }
}

fn point(x: f64, rate: Rate) -> Point {
    Point { x, y: rate.value, low: rate.low, high: rate.high }
}

/// One series per strategy, in the paper's order.
fn series_of(cells: &[&CellSummary], point_of: impl Fn(&CellSummary) -> Option<Point>) -> Vec<Series> {
    DEFENCES
        .iter()
        .filter_map(|&strategy| {
            let points: Vec<Point> =
                cells.iter().filter(|c| c.strategy == strategy).filter_map(|c| point_of(c)).collect();
            (!points.is_empty()).then(|| Series { strategy, label: strategy.title().to_string(), points })
        })
        .collect()
}

/// One ASR plot of a harmful group: its x axis, file name part, title and
/// caption words, and the x of a cell.
struct AsrAxis {
    x: XAxis,
    file: &'static str,
    title: &'static str,
    against: &'static str,
    x_of: fn(&CellSummary) -> f64,
}

const ASR_AXES: [AsrAxis; 2] = [
    AsrAxis {
        x: XAxis::Tflop,
        file: "tflop",
        title: "compute",
        against: "against mean TFLOP per prompt; bars are 95% bootstrap intervals",
        x_of: |c| c.mean_tflop,
    },
    AsrAxis {
        x: XAxis::Width,
        file: "width",
        title: "width",
        against: "against search width",
        x_of: |c| c.width.unwrap_or(1) as f64,
    },
];

fn group_figures(group: &Group, headline: &str) -> Result<Vec<Figure>, EvalError> {
    let slug: String =
        group.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let asr = |c: &CellSummary| c.asr.get(headline).copied();
    let n = group.cells.iter().map(|c| c.prompts).max().unwrap_or(0);
    let what = format!("ASR ({headline} judge) on {} ({n} prompts)", group.name);
    ASR_AXES
        .iter()
        .map(|axis| {
            let series = series_of(&group.cells, |c| Some(point((axis.x_of)(c), asr(c)?)));
            let title = format!("ASR against {}: {}", axis.title, group.name);
            Ok(Figure {
                file: format!("asr-{}-{slug}.svg", axis.file),
                caption: format!("{what} {}.", axis.against),
                svg: line_chart(&Chart { title: &title, x: axis.x, y_label: "ASR" }, &series)?,
            })
        })
        .collect()
}

/// The study's curves: ASR, majority-vote ASR and reasoning harm against
/// reasoning tokens, one chart per attack (a line per defence and measure).
fn reasoning_figures(study: &ReasoningStudy) -> Result<Vec<Figure>, EvalError> {
    let mut attacks: Vec<&str> = study.groups.iter().map(|g| g.attack.as_str()).collect();
    attacks.dedup();
    let mut figures = Vec::new();
    for attack in attacks {
        let mut series = Vec::new();
        for g in study.groups.iter().filter(|g| g.attack == attack) {
            let name = match g.width {
                Some(w) => format!("{}-{w}", g.strategy.title()),
                None => g.strategy.title().to_string(),
            };
            let line = |label: &str, rate: &dyn Fn(&reasoning_study::BudgetPoint) -> Option<Rate>| Series {
                strategy: g.strategy,
                label: format!("{name}: {label}"),
                points: g.budgets.iter().filter_map(|b| Some(point(b.mean_reasoning_tokens, rate(b)?))).collect(),
            };
            series.push(line("ASR", &|b| Some(b.asr)));
            if g.samples > 1 {
                series.push(line("majority-vote ASR", &|b| b.vote_asr));
            }
            series.push(line("reasoning harm", &|b| b.reasoning_harm));
            series.push(line("over-refusal", &|b| b.over_refusal));
        }
        series.retain(|s| !s.points.is_empty());
        let svg = line_chart(
            &Chart { title: "Safety against reasoning tokens", x: XAxis::ReasoningTokens, y_label: "rate" },
            &series,
        )?;
        figures.push(Figure {
            file: format!("reasoning-{attack}.svg"),
            caption: format!(
                "Under attack `{attack}`: ASR of the answer, harm of the reasoning trace ({}), and over-refusal on \
                 benign prompts, against mean reasoning tokens; 95% bootstrap intervals.",
                study.judge
            ),
            svg,
        });
    }
    Ok(figures)
}
