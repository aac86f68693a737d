/// A token id in a model's vocabulary.
///
/// Policy, process reward model and multifurcation reward model share one
/// vocabulary in the method (method.md section 2), so a `TokenId` from the
/// policy indexes the MRM's reward vector directly.
pub type TokenId = u32;
