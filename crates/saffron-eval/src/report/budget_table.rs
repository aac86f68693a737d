//! The paper-style table: every defence at the compute budget of
//! Best-of-32 (Saffron-1, Table 2).

use saffron_search::StrategyKind;
use serde::Serialize;

use crate::metrics::{scaling_efficiency, Rate};
use crate::summary::CellSummary;

/// A cell counts as within the budget up to this factor above it: mean
/// compute per prompt varies a little with answer lengths, and a width whose
/// cost lands 5% over the budget is still the paper's "same budget".
pub const BUDGET_TOLERANCE: f64 = 1.10;

/// Strategies in the paper's row order (their display names are
/// [`StrategyKind::title`]).
pub const DEFENCES: [StrategyKind; 6] = [
    StrategyKind::Sample,
    StrategyKind::BestOfN,
    StrategyKind::Rebase,
    StrategyKind::Lookahead,
    StrategyKind::Beam,
    StrategyKind::Saffron,
];

/// One defence at the budget.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetRow {
    pub defence: String,
    pub cell: CellSummary,
    /// Whether the chosen cell's compute is within the budget (with
    /// [`BUDGET_TOLERANCE`]); when no width of the defence is, its cheapest
    /// cell is shown and this is false.
    pub within_budget: bool,
    /// Over-refusal of the same strategy and width on the benign prompts.
    pub over_refusal: Option<Rate>,
    /// Fluency (mean log-probability per token) of those benign answers.
    pub benign_logprob: Option<f64>,
    /// `ln(budget / TFLOP) / ASR` on the headline judge.
    pub efficiency: Option<f64>,
}

/// The table of one group of harmful cells.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetTable {
    pub budget_tflop: f64,
    /// Where the budget comes from (`Best-of-32`, or what stood in for it).
    pub budget_from: String,
    /// Each defence at its widest width within the budget.
    pub rows: Vec<BudgetRow>,
    /// Every cell of the group in the same columns, defence by defence,
    /// narrowest width first: ASR against compute at every width.
    pub every_width: Vec<BudgetRow>,
}

/// Each defence's widest cell within the budget, the budget being
/// Best-of-32's mean compute (else the widest Best-of-N's, else the most
/// expensive cell's), and every cell against the same budget. `benign`
/// gives the over-refusal at the same strategy and width. `None` when
/// `harmful` is empty.
pub fn at_budget(harmful: &[&CellSummary], benign: &[&CellSummary], headline: &str) -> Option<BudgetTable> {
    let widest_bon = harmful.iter().filter(|c| c.strategy == StrategyKind::BestOfN).max_by_key(|c| c.width);
    let (budget_tflop, budget_from) = match widest_bon {
        Some(c) if c.width == Some(32) => (c.mean_tflop, "Best-of-32".to_owned()),
        Some(c) => (c.mean_tflop, format!("Best-of-{} (the run has no Best-of-32)", c.width.unwrap_or(0))),
        None => (
            harmful.iter().map(|c| c.mean_tflop).fold(f64::NAN, f64::max),
            "the most expensive cell (the run has no Best-of-N)".to_owned(),
        ),
    };
    if !budget_tflop.is_finite() {
        return None;
    }
    let within = |c: &CellSummary| c.mean_tflop <= budget_tflop * BUDGET_TOLERANCE;
    let row_of = |name: &str, cell: &CellSummary| {
        let benign_cell = benign.iter().find(|b| b.strategy == cell.strategy && b.width == cell.width);
        BudgetRow {
            defence: name.to_owned(),
            cell: cell.clone(),
            within_budget: within(cell),
            over_refusal: benign_cell.and_then(|b| b.over_refusal),
            benign_logprob: benign_cell.and_then(|b| b.mean_logprob),
            efficiency: cell.asr.get(headline).and_then(|r| scaling_efficiency(budget_tflop, cell.mean_tflop, r.value)),
        }
    };
    let mut rows = Vec::new();
    let mut every_width = Vec::new();
    for strategy in DEFENCES {
        let name = strategy.title();
        let mut cells: Vec<&CellSummary> = harmful.iter().copied().filter(|c| c.strategy == strategy).collect();
        cells.sort_by_key(|c| c.width);
        let widest_within =
            cells.iter().copied().filter(|c| within(c)).max_by(|a, b| a.mean_tflop.total_cmp(&b.mean_tflop));
        let cheapest = cells.iter().copied().min_by(|a, b| a.mean_tflop.total_cmp(&b.mean_tflop));
        if let Some(cell) = widest_within.or(cheapest) {
            rows.push(row_of(name, cell));
        }
        every_width.extend(cells.iter().map(|c| row_of(name, c)));
    }
    Some(BudgetTable { budget_tflop, budget_from, rows, every_width })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::example_cell as cell;

    #[test]
    fn each_defence_gets_its_widest_cell_within_best_of_32() {
        let cells = [
            cell("sample", None, 0.08, 0.9),
            cell("best-of-n", Some(4), 0.4, 0.8),
            cell("best-of-n", Some(32), 2.4, 0.6),
            cell("saffron", Some(16), 0.5, 0.5),
            cell("saffron", Some(32), 1.0, 0.3),
            cell("beam", Some(2), 1.2, 0.7),
            cell("beam", Some(4), 2.6, 0.6),      // within 10% of the budget
            cell("lookahead", Some(1), 3.0, 0.8), // over it: shown, flagged
        ];
        let mut benign = cell("saffron", Some(32), 1.0, 0.0);
        benign.over_refusal = Some(Rate { value: 0.1, low: 0.0, high: 0.2, n: 10 });
        let refs: Vec<&CellSummary> = cells.iter().collect();
        let table = at_budget(&refs, &[&benign], "refusal").unwrap();
        assert_eq!((table.budget_tflop, table.budget_from.as_str()), (2.4, "Best-of-32"));
        let picked: Vec<(&str, Option<usize>, bool)> =
            table.rows.iter().map(|r| (r.defence.as_str(), r.cell.width, r.within_budget)).collect();
        assert_eq!(
            picked,
            [
                ("no defence", None, true),
                ("Best-of-N", Some(32), true),
                ("Lookahead (DeAL)", Some(1), false),
                ("PRM beam search", Some(4), true),
                ("Saffron", Some(32), true),
            ]
        );
        let saffron = &table.rows[4];
        assert_eq!(saffron.over_refusal.unwrap().value, 0.1);
        assert!((saffron.efficiency.unwrap() - (2.4f64 / 1.0).ln() / 0.3).abs() < 1e-12);
        assert_eq!(table.rows[1].efficiency, Some(0.0), "Best-of-32 spends the whole budget");
        // Every width: all eight cells, in the paper's defence order and by
        // width, flagged against the same budget.
        let every: Vec<(&str, Option<usize>, bool)> =
            table.every_width.iter().map(|r| (r.defence.as_str(), r.cell.width, r.within_budget)).collect();
        assert_eq!(
            every,
            [
                ("no defence", None, true),
                ("Best-of-N", Some(4), true),
                ("Best-of-N", Some(32), true),
                ("Lookahead (DeAL)", Some(1), false),
                ("PRM beam search", Some(2), true),
                ("PRM beam search", Some(4), true),
                ("Saffron", Some(16), true),
                ("Saffron", Some(32), true),
            ]
        );
        assert_eq!(table.every_width[7].over_refusal, saffron.over_refusal, "benign matched by strategy and width");
        assert_eq!(table.every_width[6].over_refusal, None, "no benign Saffron-16 cell");
        assert!(at_budget(&[], &[], "refusal").is_none());
    }
}
