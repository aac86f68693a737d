use saffron_core::TokenId;
use saffron_search::fake::{FakeMrm, FakePolicy, FakePrm};
use saffron_search::{search, LengthLimits, Models, SearchConfig, SearchOutcome, Strategy, Trace, TraceEvent};

/// Token 0 ends a generation in every fake policy here.
pub const END: TokenId = 0;
/// The prompt's tokens (what the policy sees before the response).
pub const CONTEXT: [TokenId; 3] = [7, 8, 9];

pub fn config(strategy: Strategy, max_new: usize, min_new: usize) -> SearchConfig {
    let mut c = SearchConfig::new(strategy);
    c.length = LengthLimits { max_new_tokens: max_new, min_new_tokens: min_new };
    c
}

/// Runs a search and returns the outcome and its trace.
pub fn run(
    config: &SearchConfig,
    policy: &mut FakePolicy,
    prm: Option<&mut FakePrm>,
    mrm: Option<&mut FakeMrm>,
) -> (SearchOutcome, Trace) {
    let mut models = Models {
        policy,
        prm: prm.map(|p| p as &mut dyn saffron_core::ProcessReward),
        mrm: mrm.map(|m| m as &mut dyn saffron_core::MultifurcationReward),
    };
    let mut trace = Trace::default();
    let outcome = search(config, &mut models, &CONTEXT, &mut trace).expect("search failed");
    (outcome, trace)
}

/// How many times `token` occurs in `tokens`.
pub fn count(tokens: &[TokenId], token: TokenId) -> f32 {
    tokens.iter().filter(|&&t| t == token).count() as f32
}

/// Scores of every `score` event, in order.
pub fn scores(trace: &Trace) -> Vec<f32> {
    trace
        .events
        .iter()
        .filter_map(|e| if let TraceEvent::Score { score, .. } = e { Some(*score) } else { None })
        .collect()
}
