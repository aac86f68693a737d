//! A policy on a real OpenAI-compatible server: llama.cpp's llama-server,
//! built by `scripts/llama-server.sh` and started here on 127.0.0.1 with
//! SmolLM2. The searches over it are compared with the same searches on the
//! local engine.
//!
//! The server tests are slow (the server's first build took 19 minutes here):
//! `#[ignore]`d, run by `scripts/test.sh --slow`, which builds the server
//! and names it in `SAFFRON_LLAMA_SERVER`. The tests without a server run
//! always.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use saffron_core::sampling::Decoding;
use saffron_core::WantedOutputs;
use saffron_defence::fake::FakeGuard;
use saffron_defence::local::LocalPolicy;
use saffron_defence::{
    Answer, DefenceError, DefenceModels, MrmBackend, PolicyBackend, PrmBackend, RemoteOptions, RemotePolicy, RemoteSpec,
};
use saffron_engine::{ChatPrompt, TreeOptions};
use saffron_reward::{LoadedMrm, Loader};
use saffron_search::{NoTrace, SearchConfig, StrategyKind};
use saffron_test_support::{real_home, smollm2_path};

const PROMPT: &str = "Name three rivers in Europe.";

/// llama-server on a free port, stopped when dropped.
struct Server {
    child: Child,
    spec: RemoteSpec,
}

impl Server {
    fn start() -> Server {
        let bin = std::env::var("SAFFRON_LLAMA_SERVER").expect(
            "SAFFRON_LLAMA_SERVER names llama-server (scripts/test.sh --slow builds it: scripts/llama-server.sh)",
        );
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(bin)
            .args(["-m", &smollm2_path().to_string_lossy(), "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", "4096", "-np", "2", "-t", "2", "--no-webui", "--alias", "smollm2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("llama-server starts");
        let mut server = Server { child, spec: format!("openai+http://127.0.0.1:{port}/v1#smollm2").parse().unwrap() };
        server.wait_ready(port);
        server
    }

    fn wait_ready(&mut self, port: u16) {
        let start = Instant::now();
        let health = format!("http://127.0.0.1:{port}/health");
        while start.elapsed() < Duration::from_secs(120) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("llama-server exited at start: {status}");
            }
            if reqwest::blocking::get(&health).is_ok_and(|r| r.status().is_success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("llama-server was not ready after 120 s");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options() -> TreeOptions {
    TreeOptions { threads: Some(2), ..TreeOptions::default() }
}

fn smollm2() -> String {
    smollm2_path().to_string_lossy().into_owned()
}

fn remote(server: &Server, top_k: usize) -> Box<dyn PolicyBackend> {
    let vocabulary = Loader::new(&real_home()).vocabulary(&smollm2()).unwrap();
    let options = RemoteOptions { top_k, ..RemoteOptions::default() };
    Box::new(RemotePolicy::connect(server.spec.clone(), vocabulary, options).unwrap())
}

fn local() -> Box<dyn PolicyBackend> {
    Box::new(LocalPolicy::new(Loader::new(&real_home()).model(&smollm2()).unwrap()))
}

fn models(policy: Box<dyn PolicyBackend>) -> DefenceModels {
    let prm = Some(Box::new(FakeGuard) as Box<dyn PrmBackend>);
    let mrm = Some(Box::new(LoadedMrm::policy_logits()) as Box<dyn MrmBackend>);
    DefenceModels::new(policy, prm, mrm, options())
}

fn config(strategy: StrategyKind, width: usize, decoding: Decoding) -> SearchConfig {
    let mut c = SearchConfig::new(strategy.default_strategy());
    if strategy != StrategyKind::Sample {
        c.strategy.set_width(width).unwrap();
    }
    c.decoding = decoding;
    c.seed = 7;
    c.length.max_new_tokens = 16;
    c.length.min_new_tokens = 0;
    c
}

fn answer(models: &DefenceModels, config: SearchConfig) -> Result<Answer, DefenceError> {
    models.defence(config)?.answer(PROMPT, &ChatPrompt::user(PROMPT), &mut NoTrace)
}

/// Every sample of Best-of-N (the winner and the runners-up, by id).
fn samples(a: &Answer) -> Vec<Vec<u32>> {
    let mut all: Vec<Vec<u32>> =
        std::iter::once(&a.tokens).chain(a.alternatives.iter().map(|r| &r.tokens)).cloned().collect();
    all.sort();
    all
}

#[test]
#[ignore = "slow: needs llama-server (scripts/test.sh --slow)"]
fn greedy_decoding_over_the_server_gives_the_local_engines_tokens_and_counts_the_servers_cache() {
    let server = Server::start();
    let config = config(StrategyKind::Sample, 1, Decoding::Greedy);
    let there = answer(&models(remote(&server, 20)), config.clone()).unwrap();
    let here = answer(&models(local()), config).unwrap();
    assert_eq!(there.tokens, here.tokens, "remote {:?} vs local {:?}", there.text, here.text);
    let run = there.remote.as_ref().expect("a remote answer says where it ran");
    assert_eq!(run.url, server.spec.to_string());
    assert_eq!(run.nucleus.truncated, 0, "greedy needs only the top token");
    assert_eq!(run.nucleus.steps, there.tokens.len() as u64);
    // The FLOPs of a token are those of the local engine; the server's
    // prefix cache serves each step's context after the first.
    let policy = there.cost.policy;
    assert!(policy.tokens_served > policy.tokens_computed, "{policy:?}");
    assert_eq!(policy.tokens_requested(), here.cost.policy.tokens_requested(), "the same paths were asked about");
}

#[test]
#[ignore = "slow: needs llama-server (scripts/test.sh --slow)"]
fn best_of_n_over_the_server_draws_the_local_engines_samples_for_the_same_seed() {
    let server = Server::start();
    let config = config(StrategyKind::BestOfN, 4, Decoding::default());
    // SmolLM2's distributions are flat: its top 20 tokens hold less than
    // the 0.8 nucleus at about a quarter of the steps, so ask for more.
    let there = answer(&models(remote(&server, 400)), config.clone()).unwrap();
    let here = answer(&models(local()), config).unwrap();
    let cuts = there.remote.as_ref().unwrap().nucleus;
    // saffron samples (seeded per node) from the logits the server returns:
    // the same draws as here wherever the top k tokens hold the nucleus.
    assert_eq!(cuts.truncated, 0, "{cuts:?}: a truncated nucleus may draw otherwise");
    assert_eq!(samples(&there), samples(&here));
}

#[test]
#[ignore = "slow: needs llama-server (scripts/test.sh --slow)"]
fn saffron_over_the_server_completes_and_records_how_often_its_nucleus_was_cut() {
    let server = Server::start();
    let mut config = config(StrategyKind::Saffron, 4, Decoding::default());
    if let saffron_search::Strategy::Saffron(s) = &mut config.strategy {
        s.top_p = 0.99;
    }
    let there = answer(&models(remote(&server, 20)), config).unwrap();
    assert!(!there.tokens.is_empty());
    let cuts = there.remote.as_ref().unwrap().nucleus;
    assert!(cuts.steps >= there.tokens.len() as u64, "{cuts:?}");
    assert!(cuts.truncated > 0, "a 0.99 nucleus is wider than 20 tokens somewhere: {cuts:?}");
}

#[test]
fn a_server_that_is_not_there_is_named_in_the_error() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spec: RemoteSpec = format!("openai+http://127.0.0.1:{port}/v1").parse().unwrap();
    let vocabulary = Loader::new(&real_home()).vocabulary(&smollm2()).unwrap();
    let options = RemoteOptions { retries: 1, ..RemoteOptions::default() };
    let e = RemotePolicy::connect(spec, vocabulary, options).err().expect("nothing listens there").to_string();
    assert!(e.contains(&format!("http://127.0.0.1:{port}/tokenize")) && e.contains("2 attempts"), "{e}");
}

#[test]
fn a_remote_policy_refuses_hidden_states_saying_which_mrm_needs_them() {
    let vocabulary = Loader::new(&real_home()).vocabulary(&smollm2()).unwrap();
    let url = "openai+http://127.0.0.1:9/v1".parse().unwrap();
    let client = saffron_defence::remote::Client::new(url, RemoteOptions::default(), &[]).unwrap();
    let mut session = saffron_defence::remote::RemoteSession::new(&client, vocabulary.model(), 1);
    use saffron_core::Policy;
    let e = session.outputs(&[&[1, 2, 3]], WantedOutputs::Hidden).unwrap_err().to_string();
    assert!(e.contains("hidden states") && e.contains("--backbone"), "{e}");
}

#[test]
fn the_tokens_held_back_as_part_of_a_character_are_those_that_end_inside_one() {
    let vocabulary = Loader::new(&real_home()).vocabulary(&smollm2()).unwrap();
    let model = vocabulary.model();
    let partial = saffron_defence::remote::partial_tokens(model);
    assert!(!partial.is_empty(), "a byte-level vocabulary has tokens that are part of a character");
    // SmolLM2 splits these characters over tokens: the first piece of
    // each ends inside one (held back), the last begins inside one (not).
    let tokens = model.tokenize("naïve café 日本", saffron_engine::SpecialText::Literal);
    let ends_inside = |t: u32| std::str::from_utf8(&model.token_bytes(t)).is_err_and(|e| e.error_len().is_none());
    assert!(tokens.iter().any(|&t| ends_inside(t)), "{tokens:?}");
    for &token in &tokens {
        assert_eq!(partial.contains(&token), ends_inside(token), "token {token}");
    }
    for &token in &partial {
        let bytes = model.token_bytes(token);
        assert!(std::str::from_utf8(&bytes).unwrap_err().error_len().is_none(), "{token}: {bytes:?}");
    }
}
