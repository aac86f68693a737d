//! Chat templates, tokenisation and hyper-parameters of both default models.

use saffron_engine::{ChatPrompt, ModelShape, SpecialText};

use saffron_test_support::{qwen, smollm2};

fn attack() -> ChatPrompt {
    ChatPrompt { prefill: Some("Sure, here is".into()), ..ChatPrompt::user("How do I make a cake?") }
}

#[test]
fn smollm2_prefill_prompt_is_byte_exact() {
    let text = smollm2().render_chat(&attack()).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHow do I make a cake?<|im_end|>\n<|im_start|>assistant\nSure, here is"
    );
    let with_system = ChatPrompt { system: Some("Be brief.".into()), ..attack() };
    assert_eq!(
        smollm2().render_chat(&with_system).unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHow do I make a cake?<|im_end|>\n\
         <|im_start|>assistant\nSure, here is"
    );
}

#[test]
fn qwen_prefill_prompt_is_byte_exact() {
    let text = qwen().render_chat(&attack()).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\nHow do I make a cake?<|im_end|>\n<|im_start|>assistant\nSure, here is"
    );
    let with_system = ChatPrompt { system: Some("Be brief.".into()), ..attack() };
    assert_eq!(
        qwen().render_chat(&with_system).unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHow do I make a cake?<|im_end|>\n\
         <|im_start|>assistant\nSure, here is"
    );
}

#[test]
fn template_markers_become_single_special_tokens_and_round_trip() {
    for (model, im_start, im_end) in [(smollm2(), 1, 2), (qwen(), 151_644, 151_645)] {
        let text = model.render_chat(&attack()).unwrap();
        let tokens = model.encode_chat(&attack()).unwrap();
        assert_eq!(tokens[0], im_start, "{}", model.name());
        assert_eq!(tokens.iter().filter(|&&t| t == im_start).count(), 3);
        assert_eq!(tokens.iter().filter(|&&t| t == im_end).count(), 2);
        assert_eq!(model.detokenize(&tokens), text);
        // Literal tokenisation keeps the markers as plain text.
        let literal = model.tokenize("<|im_start|>", SpecialText::Literal);
        assert!(literal.len() > 1 && !literal.contains(&im_start));
        assert!(model.is_end_of_generation(im_end));
    }
}

#[test]
fn shapes_match_data_sources_and_llama_cpp_parameter_counts() {
    let s = *smollm2().shape();
    assert_eq!(
        s,
        ModelShape { n_layer: 30, d_model: 576, n_head: 9, n_head_kv: 3, head_dim: 64, d_ffn: 1536, n_vocab: 49_152 }
    );
    // SmolLM2 (tied embeddings): every parameter is a block matmul weight,
    // the embedding (reused as output head), or an RMS-norm weight.
    let norms = 30 * 2 * 576 + 576;
    assert_eq!(s.block_matmul_params() + s.head_params() + norms, smollm2().parameter_count());

    let q = *qwen().shape();
    assert_eq!(
        q,
        ModelShape { n_layer: 24, d_model: 896, n_head: 14, n_head_kv: 2, head_dim: 64, d_ffn: 4864, n_vocab: 151_936 }
    );
    // Qwen2 (untied): embedding and output head are separate tensors, and
    // q/k/v carry biases (896 + 128 + 128 per layer).
    let norms = 24 * 2 * 896 + 896;
    let biases = 24 * (896 + 128 + 128);
    assert_eq!(q.block_matmul_params() + 2 * q.head_params() + norms + biases, qwen().parameter_count());
}

#[test]
fn smollm2_token_flops_by_hand() {
    let s = *smollm2().shape();
    // per layer: q,o 2·576·576 = 663,552; k,v 2·576·192 = 221,184;
    // ffn 3·576·1536 = 2,654,208; sum 3,538,944; × 30 = 106,168,320.
    assert_eq!(s.block_matmul_params(), 106_168_320);
    // attention at context 100: 4 · 30 · 9 · 64 · 100 = 6,912,000
    assert_eq!(s.token_flops(100, false), 2.0 * 106_168_320.0 + 6_912_000.0);
    assert_eq!(s.token_flops(100, true) - s.token_flops(100, false), 2.0 * 576.0 * 49_152.0);
}

#[test]
fn a_vocabulary_only_load_reads_what_a_full_load_does_and_cannot_run() {
    for full in [smollm2(), qwen()] {
        let vocab = saffron_engine::Model::load_vocabulary(full.path()).unwrap();
        assert_eq!(vocab.weights(), saffron_engine::Weights::VocabularyOnly);
        assert_eq!(vocab.shape(), full.shape(), "{}", full.name());
        assert_eq!(vocab.train_context(), full.train_context());
        assert_eq!(vocab.end_of_generation(), full.end_of_generation());
        assert_eq!(vocab.encode_chat(&attack()).unwrap(), full.encode_chat(&attack()).unwrap());
        let tokens = full.tokenize("Hello, world!", SpecialText::Literal);
        assert_eq!(vocab.detokenize(&tokens), "Hello, world!");
        let e = saffron_engine::PrefixTree::new(&vocab, saffron_engine::TreeOptions::default()).err().unwrap();
        assert!(e.to_string().contains("vocabulary only"), "{e}");
    }
}
