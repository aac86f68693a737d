//! `saffron report RUN_DIR` (also the end of `saffron eval`): writes the
//! run's summaries, plots and report.html, and prints the paper-style table.

use std::path::Path;

use saffron_eval::report::{write_report, VersusBestOfN, WidthTrend};
use saffron_eval::summary::{CellSummary, POOLED_BENIGN, POOLED_HARMFUL};

pub fn run(dir: &Path) -> anyhow::Result<()> {
    let files = write_report(dir)?;
    if files.allow_overlap {
        println!(
            "NOT ALL HELD OUT: the grid sets allow_overlap = true (`saffron eval GRID --check` lists the overlap)"
        );
    }
    for (group, table) in &files.tables {
        println!("{group}: defences at {:.3} TFLOP per prompt ({})", table.budget_tflop, table.budget_from);
        let judges = &files.judges;
        let mut header = format!("  {:<18} {:>5} {:>8} {:>7}", "defence", "width", "TFLOP", "calls");
        for j in judges {
            header.push_str(&format!("  {:<20}", format!("ASR {j}")));
        }
        let fluency = table.rows.iter().any(|r| r.cell.mean_logprob.is_some());
        println!("{header}  over-refusal{}", if fluency { "  log-prob  benign log-prob" } else { "" });
        for row in &table.rows {
            let c = &row.cell;
            let mut line = format!(
                "  {:<18} {:>5} {:>8.3}{} {:>6.1}",
                row.defence,
                width(c),
                c.mean_tflop,
                if row.within_budget { " " } else { "+" },
                c.mean_reward_calls
            );
            for j in judges {
                let rate = c.asr.get(j).map_or("-".into(), ToString::to_string);
                line.push_str(&format!("  {rate:<20}"));
            }
            line.push_str(&row.over_refusal.map_or("  -".into(), |r| format!("  {:.2}", r.value)));
            if fluency {
                for x in [row.cell.mean_logprob, row.benign_logprob] {
                    line.push_str(&x.map_or("  -".into(), |x| format!("  {x:>8.2}")));
                }
            }
            println!("{line}");
        }
    }
    if files.tables.iter().any(|(_, t)| t.rows.iter().any(|r| !r.within_budget)) {
        println!("  (+: no width of this defence fits the budget; its cheapest is shown)");
    }
    let pooled = [POOLED_HARMFUL, POOLED_BENIGN];
    let too_long: usize =
        files.summaries.iter().filter(|s| !pooled.contains(&s.dataset.as_str())).map(|s| s.too_long).sum();
    if too_long > 0 {
        println!(
            "{too_long} answers skipped: their prompts did not fit the policy's context (finish = too_long, not rated)"
        );
    }
    print_comparisons(&files.comparisons, &files.judges[0]);
    print_width_trends(&files.width_trends, &files.judges[0]);
    println!(
        "{} cells; summary.json, summary.csv and {} plots in {}",
        files.summaries.len(),
        files.plots.len(),
        dir.display()
    );
    println!("report: {} (tables in Markdown: {})", files.html.display(), files.markdown.display());
    Ok(())
}

/// Each search against the cheapest Best-of-N spending at least as much.
fn print_comparisons(comparisons: &[(String, Vec<VersusBestOfN>)], headline: &str) {
    for (group, rows) in comparisons {
        println!("{group}: searches against Best-of-N at equal compute (ASR {headline}, paired difference)");
        for r in rows {
            println!(
                "  {:<18} {:>5} {:>8.3}  vs Best-of-{:<3} {:>8.3}{}  {:+.2} [{:+.2}, {:+.2}]  n = {}",
                r.defence,
                width(&r.cell),
                r.cell.mean_tflop,
                r.best_of_n.width.unwrap_or(0),
                r.best_of_n.mean_tflop,
                if r.best_of_n_spends_more { " " } else { "-" },
                r.difference.value,
                r.difference.low,
                r.difference.high,
                r.difference.n
            );
        }
    }
    if comparisons.iter().any(|(_, rows)| rows.iter().any(|r| !r.best_of_n_spends_more)) {
        println!("  (-: no Best-of-N spends as much; the most expensive stands in)");
    }
}

/// Each search's widest width against its narrowest.
fn print_width_trends(trends: &[(String, Vec<WidthTrend>)], headline: &str) {
    for (group, rows) in trends {
        println!("{group}: widest against narrowest width (ASR {headline}, paired difference)");
        for r in rows {
            println!(
                "  {:<18} width {:>3} -> {:<3}  {:+.2} [{:+.2}, {:+.2}]  n = {}",
                r.defence,
                width(&r.narrowest),
                width(&r.widest),
                r.difference.value,
                r.difference.low,
                r.difference.high,
                r.difference.n
            );
        }
    }
}

/// A cell's width, `-` for no defence.
fn width(cell: &CellSummary) -> String {
    cell.width.map_or("-".into(), |w| w.to_string())
}
