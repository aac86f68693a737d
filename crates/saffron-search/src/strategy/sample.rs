//! No defence: one sampled (or greedy) answer (method.md section 5).

use crate::run::Run;
use crate::search_tree::Branch;
use crate::SearchError;

pub(crate) fn search(run: &mut Run) -> Result<Branch, SearchError> {
    let mut node = run.tree.root();
    while node.is_active() && run.begin_step() {
        let decoding = run.decoding;
        let mut children = run.tree.extend(run.models, &[(&node, 0)], 1, &decoding, run.observer)?;
        node = children.remove(0);
        run.end_step(std::slice::from_ref(&node));
    }
    Ok(node)
}
