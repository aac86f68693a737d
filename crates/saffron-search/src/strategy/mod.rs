//! One module per strategy (method.md sections 3 and 5). Each is a function
//! over a [`Run`](crate::run::Run) that returns the chosen node.

pub(crate) mod beam;
pub(crate) mod best_of_n;
pub(crate) mod lookahead;
pub(crate) mod rebase;
pub(crate) mod saffron;
pub(crate) mod sample;
