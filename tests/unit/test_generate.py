"""Generation: cached decoding equals recomputing everything, beam search with one beam equals greedy,
sampling is reproducible, left-padded batches equal single prompts, cached greedy decoding equals a
full-recompute greedy loop of transformers' XLMRobertaForCausalLM and XLMWithLMHeadModel (causal), and the
append-token mode equals transformers' XLM generate() token for token."""

import pytest
import torch

import xlmlib
from xlmlib.generate import GenerationConfig, generate_ids

from .test_model import model_of, tiny, tiny_xlmr


def uncached_greedy(model, ids, n, **kw):
    for _ in range(n):
        nxt = model(ids, **kw).logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
    return ids


@pytest.mark.parametrize("make", [tiny, tiny_xlmr])
def test_cached_greedy_equals_uncached(make):
    cfg = make(max_positions=40)
    model = model_of(xlmlib.CausalLM, cfg, seed=3)
    ids = torch.tensor([[5, 6, 7]])
    langs = {"langs": 1} if cfg.has_lang_emb else {}
    ours = generate_ids(model, ids, config=GenerationConfig(max_new_tokens=8), **langs)
    with torch.no_grad():
        assert torch.equal(ours, uncached_greedy(model, ids, 8, **langs))


def test_left_padded_batch_equals_single_prompts():
    model = model_of(xlmlib.CausalLM, tiny_xlmr(max_positions=40), seed=4)
    a, b = torch.tensor([[5, 6, 7, 8]]), torch.tensor([[9, 10]])
    batch = torch.tensor([[5, 6, 7, 8], [1, 1, 9, 10]])
    cfg = GenerationConfig(max_new_tokens=6)
    out = generate_ids(model, batch, config=cfg)
    assert torch.equal(out[0], generate_ids(model, a, config=cfg)[0])
    assert torch.equal(out[1, 2:], generate_ids(model, b, config=cfg)[0])


def test_one_beam_equals_greedy_and_beams_score_at_least_as_well():
    model = model_of(xlmlib.CausalLM, tiny_xlmr(max_positions=40), seed=5)
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    greedy = generate_ids(model, ids, config=GenerationConfig(max_new_tokens=6, eos_token_id=2))
    beam1 = generate_ids(model, ids, config=GenerationConfig(max_new_tokens=6, eos_token_id=2, num_beams=1))
    assert torch.equal(greedy, beam1)
    beams = generate_ids(model, ids, config=GenerationConfig(max_new_tokens=6, num_beams=4, length_penalty=0.0))

    def logprob(seq):
        with torch.no_grad():
            lp = model(seq[None]).logits[0, :-1].log_softmax(-1)
        return lp[torch.arange(2, seq.shape[0] - 1), seq[3:]].sum().item()

    for row in range(2):
        assert logprob(beams[row]) >= logprob(greedy[row]) - 1e-5


def test_sampling_is_reproducible_with_a_seed():
    model = model_of(xlmlib.CausalLM, tiny_xlmr(max_positions=40), seed=6)
    ids = torch.tensor([[5, 6, 7]])
    cfg = GenerationConfig(max_new_tokens=10, do_sample=True, temperature=1.5, top_k=20, top_p=0.9, seed=11)
    first = generate_ids(model, ids, config=cfg)
    assert torch.equal(first, generate_ids(model, ids, config=cfg))
    other = generate_ids(model, ids, config=GenerationConfig(max_new_tokens=10, do_sample=True, temperature=1.5, seed=12))
    assert not torch.equal(first, other)


def test_greedy_equals_transformers_forward_loop(tmp_path):
    """Reference: XLMRobertaForCausalLM's own forward pass, run greedily with the whole prefix recomputed.
    transformers 5.23.0's generate() is not the oracle: it feeds generic position ids 0..T-1 instead of the
    model's padding-offset positions 2..T+1 (its first new token here is 2, which is also the forward argmax
    with position_ids=arange(T); the forward argmax with the model's own positions is 5)."""
    from ..parity.hf_models import build, roberta_config

    ref = build("XLMRobertaForCausalLM", roberta_config(is_decoder=True), tmp_path)
    ours = xlmlib.CausalLM.from_pretrained(tmp_path)
    ids = torch.tensor([[0, 7, 8, 9, 10]])
    with torch.no_grad():
        expected = ids
        for _ in range(12):
            nxt = ref(input_ids=expected).logits[:, -1].argmax(-1, keepdim=True)
            expected = torch.cat([expected, nxt], dim=1)
    assert torch.equal(generate_ids(ours, ids, config=GenerationConfig(max_new_tokens=12)), expected)


def test_xlm_clm_greedy_equals_reference_forward_loop(tmp_path):
    """transformers' XLM generate appends mask_token_id at every step (a different algorithm), so the
    reference here is its causal forward pass run greedily with the whole prefix recomputed each step."""
    from ..parity.hf_models import build, xlm_config

    ref = build("XLMWithLMHeadModel", xlm_config(causal=True, max_position_embeddings=40), tmp_path)
    ours = xlmlib.CausalLM.from_pretrained(tmp_path)
    ids = torch.tensor([[0, 7, 8, 9]])
    with torch.no_grad():
        expected = ids
        for _ in range(10):
            langs = torch.full_like(expected, 2)
            nxt = ref(input_ids=expected, langs=langs).logits[:, -1].argmax(-1, keepdim=True)
            expected = torch.cat([expected, nxt], dim=1)
    assert torch.equal(generate_ids(ours, ids, langs=2, config=GenerationConfig(max_new_tokens=10)), expected)


def test_append_token_mode_equals_transformers_xlm_generate(tmp_path):
    """transformers' XLMWithLMHeadModel.generate (causal config) appends config.mask_token_id and predicts at
    it, with config.lang_id everywhere; append_token_id reproduces it token for token."""
    from ..parity.hf_models import build, xlm_config

    ref = build("XLMWithLMHeadModel", xlm_config(causal=True, max_position_embeddings=40, mask_token_id=5,
                                                 lang_id=2), tmp_path, seed=3)
    ours = xlmlib.CausalLM.from_pretrained(tmp_path)
    ids = torch.tensor([[0, 7, 8, 9], [0, 11, 12, 13]])
    with torch.no_grad():
        expected = ref.generate(ids, max_new_tokens=10, do_sample=False, eos_token_id=None, pad_token_id=2)
    cfg = GenerationConfig(max_new_tokens=10, append_token_id=5, pad_token_id=2)
    got = generate_ids(ours, ids, langs=2, config=cfg)
    assert torch.equal(got, expected)
    assert not torch.equal(got, generate_ids(ours, ids, langs=2, config=GenerationConfig(max_new_tokens=10)))


def test_bad_generation_settings_are_refused():
    with pytest.raises(ValueError, match="sampling with beam search"):
        GenerationConfig(do_sample=True, num_beams=2)
    with pytest.raises(ValueError, match="temperature"):
        GenerationConfig(temperature=0)
