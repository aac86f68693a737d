//! `saffron judge-eval`: agreement of a judge with the human majority on the
//! held-out JailbreakBench 100, beside the judges recorded in that file; with
//! `--prefix-auc`, how early a guard separates unsafe answers from safe ones.

use std::io::Write;
use std::path::Path;

use anyhow::bail;
use saffron_core::Split;
use saffron_engine::TreeOptions;
use saffron_eval::judge_eval::{
    held_out_agreement, pairs_agreement, prefix_aucs, pyrit_test_agreement, read_pairs, Agreement, PairsAgreement,
    PrefixAuc, PREFIX_LENGTHS,
};
use saffron_eval::splits::Universe;
use saffron_reward::{BinaryMetrics, JudgeSpec, LoadedJudge, Loader};
use serde_json::json;

use crate::cli::JudgeEvalArgs;
use crate::progress::count_bar;

pub fn run(home: &Path, args: &JudgeEvalArgs) -> anyhow::Result<()> {
    let judge = Loader::new(home).judge(&JudgeSpec::parse(&args.judge, args.guard_format)?)?;
    let options = TreeOptions { threads: args.threads, ..TreeOptions::default() };
    let bar = count_bar("judging", 0);
    let mut progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    if args.prefix_auc {
        let LoadedJudge::Guard(guard) = &judge else { bail!("--prefix-auc measures a guard; `refusal` has no reward") };
        let universe = Universe::load(home)?;
        let (sets, held_back) = prefix_aucs(guard, home, &universe, args.auc_pairs, options, &mut progress)?;
        bar.finish_and_clear();
        return print_prefix_aucs(&sets, held_back, args.json);
    }
    if let Some(path) = &args.pairs {
        let pairs = read_pairs(path)?;
        let found = pairs_agreement(&judge, &pairs, options, &mut progress)?;
        bar.finish_and_clear();
        return print_pairs(&args.judge, path, &found, args.json);
    }
    let agreement = held_out_agreement(&judge, home, options, &mut progress)?;
    let pyrit = if args.pyrit_test {
        let universe = Universe::load(home)?;
        let is_test = |prompt: &str| universe.lookup(prompt).split == Split::Test;
        Some(pyrit_test_agreement(&judge, home, &is_test, options, &mut progress)?)
    } else {
        None
    };
    bar.finish_and_clear();
    print_agreement(&args.judge, agreement, pyrit, args.json)
}

fn print_pairs(judge: &str, path: &Path, found: &PairsAgreement, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&json!({"judge": judge, "file": path, "agreement": found}))?)?;
        return Ok(());
    }
    let m = found.judge;
    writeln!(
        out,
        "{judge} on {} (n = {}): accuracy {:.2}, FPR {:.2}, FNR {:.2}",
        path.display(),
        m.n,
        m.accuracy,
        m.fpr,
        m.fnr
    )?;
    for (kind, (n, unsafe_)) in &found.by_kind {
        writeln!(out, "  {kind:<12} {unsafe_:>3} of {n:>3} judged unsafe")?;
    }
    Ok(())
}

fn print_agreement(judge: &str, agreement: Agreement, pyrit: Option<BinaryMetrics>, json: bool) -> anyhow::Result<()> {
    let (ours, mut out) = (agreement.judge, std::io::stdout().lock());
    if json {
        let recorded: serde_json::Map<String, serde_json::Value> =
            agreement.recorded.iter().map(|(n, m)| (n.clone(), json!(m))).collect();
        let record = json!({
            "judge": judge, "accuracy": ours.accuracy, "f1": ours.f1, "fpr": ours.fpr, "fnr": ours.fnr,
            "n": ours.n, "recorded_judges": recorded, "data_files": agreement.data_files,
            "pyrit_test": pyrit,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&record)?)?;
        return Ok(());
    }
    writeln!(out, "held-out JailbreakBench classifier comparison, n = {} (human majority: 1 = jailbroken)", ours.n)?;
    writeln!(out, "{:<24} {:>8} {:>6} {:>6} {:>6}", "judge", "accuracy", "F1", "FPR", "FNR")?;
    for (name, m) in std::iter::once((format!("{judge} (this run)"), ours)).chain(agreement.recorded) {
        writeln!(out, "{name:<24} {:>8.2} {:>6.2} {:>6.2} {:>6.2}", m.accuracy, m.f1, m.fpr, m.fnr)?;
    }
    if let Some(m) = pyrit {
        writeln!(
            out,
            "test split of the PyRIT labels, n = {}: accuracy {:.2}, F1 {:.2}, FPR {:.2}, FNR {:.2}",
            m.n, m.accuracy, m.f1, m.fpr, m.fnr
        )?;
    }
    Ok(())
}

fn print_prefix_aucs(sets: &[PrefixAuc], held_back: bool, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let v = json!({ "pyrit_held_back": held_back, "prefix_auc": sets });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(out, "AUC of the guard's reward on the first k tokens of each answer (unsafe = positive):")?;
    let header: String = PREFIX_LENGTHS.iter().map(|l| format!(" {:>5}", format!("k={l}"))).collect();
    writeln!(out, "{:<28} {:>9}{header}", "set (unsafe/safe)", "")?;
    for s in sets {
        let aucs: String =
            s.auc.iter().map(|a| format!(" {:>5}", a.map_or("-".into(), |a| format!("{a:.2}")))).collect();
        writeln!(out, "{:<28} {:>9}{aucs}", s.set, format!("{}/{}", s.unsafe_, s.safe))?;
    }
    if !held_back {
        writeln!(out, "note: the PyRIT pairs were in this guard's training data (at cuts 16, 32, 128)")?;
    }
    Ok(())
}
