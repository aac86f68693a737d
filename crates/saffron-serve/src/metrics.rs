//! `GET /metrics`: Prometheus text, through `prometheus-client`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use saffron_defence::BatchStats;

/// Per defence.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DefenceLabel {
    pub strategy: String,
}

/// How a request ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub running: Gauge,
    pub queued: Gauge,
    pub requests: Family<OutcomeLabel, Counter>,
    pub time_to_first_token: Histogram,
    pub time_per_output_token: Histogram,
    pub prompt_tokens: Counter,
    pub cached_tokens: Counter,
    pub completion_tokens: Counter,
    pub tflop: Family<DefenceLabel, Counter<f64, AtomicU64>>,
    pub reward_calls: Family<DefenceLabel, Counter>,
    pub blocked: Counter,
    hit_rate: Gauge<f64, AtomicU64>,
    batch_steps: Gauge,
    batch_calls: Gauge,
    batch_gather: Gauge<f64, AtomicU64>,
    batch_run: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("saffron");
        let m = Metrics {
            running: Gauge::default(),
            queued: Gauge::default(),
            requests: Family::default(),
            time_to_first_token: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            time_per_output_token: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            prompt_tokens: Counter::default(),
            cached_tokens: Counter::default(),
            completion_tokens: Counter::default(),
            tflop: Family::default(),
            reward_calls: Family::default(),
            blocked: Counter::default(),
            hit_rate: Gauge::default(),
            batch_steps: Gauge::default(),
            batch_calls: Gauge::default(),
            batch_gather: Gauge::default(),
            batch_run: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("requests_running", "Requests being searched", m.running.clone());
        registry.register("requests_queued", "Requests waiting for a place", m.queued.clone());
        registry.register("requests", "Requests by how they ended", m.requests.clone());
        registry.register(
            "time_to_first_token_seconds",
            "From arrival to the first answer token sent",
            m.time_to_first_token.clone(),
        );
        registry.register(
            "time_per_output_token_seconds",
            "Search time per generated token",
            m.time_per_output_token.clone(),
        );
        registry.register("prompt_tokens", "Prompt tokens of answered requests", m.prompt_tokens.clone());
        registry.register("cached_prompt_tokens", "Prompt tokens served from the prefix tree", m.cached_tokens.clone());
        registry.register("completion_tokens", "Tokens answered", m.completion_tokens.clone());
        registry.register("tflop", "Forward TFLOP of policy and reward models, by defence", m.tflop.clone());
        registry.register("reward_calls", "Reward model evaluations, by defence", m.reward_calls.clone());
        registry.register("answers_blocked", "Answers the output check blocked", m.blocked.clone());
        registry.register(
            "prefix_tree_hit_rate",
            "Share of requested policy tokens served from the shared prefix tree",
            m.hit_rate.clone(),
        );
        registry.register("batch_steps", "Joint decodes of the shared prefix tree", m.batch_steps.clone());
        registry.register("batch_calls", "Policy calls answered by those decodes", m.batch_calls.clone());
        registry.register(
            "batch_gather_seconds",
            "Time the scheduler waited for other searches' calls to join a batch",
            m.batch_gather.clone(),
        );
        registry.register("batch_run_seconds", "Time inside the shared tree's joint requests", m.batch_run.clone());
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn outcome(&self, outcome: &str) {
        self.requests.get_or_create(&OutcomeLabel { outcome: outcome.into() }).inc();
    }

    /// The text exposition, with the shared tree's totals as of now.
    pub fn render(&self, shared: Option<BatchStats>) -> String {
        if let Some(s) = shared {
            self.hit_rate.set(s.hit_rate());
            self.batch_steps.set(s.steps as i64);
            self.batch_calls.set(s.calls as i64);
            self.batch_gather.set(s.gather_seconds);
            self.batch_run.set(s.run_seconds);
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
