"""Objectives: MLM masking statistics and invariants, the masked-only loss, TLM/CLM framing, language sampling.

Statistical tolerances are stated as multiples of the binomial standard deviation sqrt(p(1-p)/n); with a
fixed seed each test is deterministic, and 4σ means a correct implementation fails with odds below 1e-4
for a seed chosen at random. Expected framings were written by hand from reference/formats.md §5.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xlmlib.family import Framing
from xlmlib.losses import masked_lm_loss
from xlmlib.objectives import (
    IGNORE_INDEX,
    LanguageSampler,
    MaskingConfig,
    clm_batch,
    frequency_weights,
    language_sampling_probs,
    mask_tokens,
    tlm_batch,
)

# XLM's dictionary layout (formats.md §5): <s>=0, </s>=1, <pad>=2, <unk>=3, <special0..9>=4..13, mask=5.
BOS, EOS, PAD, MASK, N_SPECIAL, VOCAB = 0, 1, 2, 5, 14, 1000
XLM_CFG = MaskingConfig(vocab_size=VOCAB, mask_id=MASK, pad_id=PAD, special_ids=tuple(range(N_SPECIAL)))


def _batch(seed=0, rows=64, width=256, pad_tail=32):
    """Random words framed `</s> w… </s>` with a padded tail on every other row."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(N_SPECIAL, VOCAB, (rows, width), generator=g)
    x[:, 0] = EOS
    x[::2, width - pad_tail :] = PAD
    x[::2, width - pad_tail - 1] = EOS
    x[1::2, -1] = EOS
    return x


def _within(observed, expected, n, sigmas=4.0):
    return abs(observed - expected) <= sigmas * math.sqrt(expected * (1 - expected) / n)


def test_bernoulli_rate_and_split_match_the_configuration():
    x = _batch()
    out = mask_tokens(x, XLM_CFG, generator=torch.Generator().manual_seed(1))
    eligible = x >= N_SPECIAL
    n_pred = int(out.pred_mask.sum())
    assert _within(n_pred / int(eligible.sum()), 0.15, int(eligible.sum()))
    masked = int((out.input_ids[out.pred_mask] == MASK).sum())
    changed = int(((out.input_ids != x) & out.pred_mask & (out.input_ids != MASK)).sum())
    assert _within(masked / n_pred, 0.8, n_pred)
    # "random" draws the original id again with probability 1/986, so changed ≈ random share.
    assert _within(changed / n_pred, 0.1, n_pred)
    assert _within(1 - masked / n_pred - changed / n_pred, 0.1, n_pred)
    assert torch.equal(out.input_ids[~out.pred_mask], x[~out.pred_mask])


def test_exact_count_chooses_ceil_p_n_positions():
    x = _batch(seed=3)
    cfg = MaskingConfig(vocab_size=VOCAB, mask_id=MASK, pad_id=PAD, special_ids=(0, 1, 3, 4), exact_count=True)
    out = mask_tokens(x, cfg, generator=torch.Generator().manual_seed(0))
    n_eligible = int(((x != PAD) & (x != EOS)).sum())
    assert int(out.pred_mask.sum()) == math.ceil(0.15 * n_eligible)


def test_frequency_weights_follow_xlm_mask_scores():
    counts = torch.tensor([0, 0, 7, 0, 5, 1, 100, 4, 0])
    w = frequency_weights(counts, 0.5, pad_id=2, special_ids=[4, 5])
    # max(count,1)^-0.5 by hand; pad (2), specials (4, 5) and zero counts (0, 1, 3, 8) are 0.
    assert w.tolist() == pytest.approx([0, 0, 0, 0, 0, 0, 0.1, 0.5, 0])


def test_frequency_smoothed_sampling_prefers_rare_tokens():
    # Half the positions hold frequent ids (count 1e6), half rare ones (count 10). Uniform sampling
    # would give a rare share near 0.5; alpha=0.5 weighs a rare position 316x a frequent one.
    counts = torch.zeros(VOCAB, dtype=torch.long)
    frequent, rare = torch.arange(100, 200), torch.arange(500, 600)
    counts[frequent], counts[rare] = 10**6, 10
    g = torch.Generator().manual_seed(5)
    x = torch.where(torch.rand(32, 128, generator=g) < 0.5, frequent[0], rare[0])
    x = x + torch.randint(0, 100, x.shape, generator=g)
    w = frequency_weights(counts, 0.5, pad_id=PAD, special_ids=range(N_SPECIAL))
    out = mask_tokens(x, XLM_CFG, generator=g, token_weights=w)
    chosen = x[out.pred_mask]
    assert chosen.numel() == math.ceil(0.15 * x.numel())  # exactly ceil(p·n), as XLM's mask_out
    assert (chosen >= 500).float().mean() > 0.95


def _words(seed, rows, width):
    """Row-local word ids with random word lengths 1..4; -1 on the framing and padding."""
    g = torch.Generator().manual_seed(seed)
    word_ids = torch.full((rows, width), -1, dtype=torch.long)
    for r in range(rows):
        lengths = torch.randint(1, 5, (width,), generator=g)
        ids = torch.repeat_interleave(torch.arange(width), lengths)[: max(width - 2, 0)]
        word_ids[r, 1 : 1 + len(ids)] = ids
    return word_ids


def test_whole_word_masking_never_splits_a_word():
    x = _batch(seed=7, pad_tail=0)
    word_ids = _words(7, *x.shape)
    cfg = MaskingConfig(vocab_size=VOCAB, mask_id=MASK, pad_id=PAD, special_ids=tuple(range(N_SPECIAL)))
    out = mask_tokens(x, cfg, generator=torch.Generator().manual_seed(2), word_ids=word_ids)
    n_words, n_chosen = 0, 0
    for r in range(x.shape[0]):
        for w in word_ids[r].unique():
            if w < 0:
                continue
            at = word_ids[r] == w
            predicted, is_mask = out.pred_mask[r, at], out.input_ids[r, at] == MASK
            assert predicted.all() or not predicted.any()
            assert is_mask.all() or not is_mask.any()  # the 80/10/10 draw is made once per word
            n_words, n_chosen = n_words + 1, n_chosen + int(predicted[0])
    assert _within(n_chosen / n_words, 0.15, n_words)  # the rate is a rate of words


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    rows=st.integers(1, 6),
    width=st.integers(1, 40),
    mode=st.sampled_from(["bernoulli", "exact", "alpha", "words"]),
    p=st.floats(0.05, 1.0),
)
def test_pads_and_specials_are_never_predicted(seed, rows, width, mode, p):
    g = torch.Generator().manual_seed(seed)
    vocab = 40
    x = torch.randint(0, vocab, (rows, width), generator=g)  # specials and pads anywhere
    cfg = MaskingConfig(vocab_size=vocab, mask_id=MASK, pad_id=PAD, special_ids=tuple(range(N_SPECIAL)),
                        mlm_probability=p, exact_count=mode == "exact")
    weights = frequency_weights(torch.arange(vocab) % 7, 0.5, pad_id=PAD) if mode == "alpha" else None
    word_ids = _words(seed, rows, width) if mode == "words" else None
    out = mask_tokens(x, cfg, generator=g, token_weights=weights, word_ids=word_ids)
    special = x < N_SPECIAL
    assert not out.pred_mask[special].any()
    assert torch.equal(out.labels == IGNORE_INDEX, ~out.pred_mask)
    assert torch.equal(out.labels[out.pred_mask], x[out.pred_mask])
    assert torch.equal(out.input_ids[~out.pred_mask], x[~out.pred_mask])
    replaced = out.input_ids[out.pred_mask]
    assert ((replaced == MASK) | (replaced >= N_SPECIAL)).all()  # random ids are never specials


def test_masking_is_deterministic_given_a_seed():
    x = _batch(seed=11)
    a = mask_tokens(x, XLM_CFG, generator=torch.Generator().manual_seed(4))
    b = mask_tokens(x, XLM_CFG, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_invalid_masking_config_fails():
    with pytest.raises(ValueError, match="split"):
        MaskingConfig(vocab_size=10, mask_id=5, pad_id=2, split=(0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        MaskingConfig(vocab_size=10, mask_id=12, pad_id=2)


@pytest.mark.parametrize("extra_rows", [None, 0, 13], ids=["selected", "fixed-exact", "fixed-with-filler"])
@pytest.mark.parametrize("with_transform", [False, True])
def test_masked_only_loss_equals_full_projection(with_transform, extra_rows):
    """The loss and every gradient equal the full projection's, whether the predicted rows are selected as
    they are or as a fixed count (rows = M + extra_rows, the static shapes CUDA graphs need)."""
    torch.manual_seed(0)
    B, T, D, V = 4, 24, 16, 50
    hidden = torch.randn(B, T, D, requires_grad=True)
    labels = torch.randint(0, V, (B, T)).masked_fill(torch.rand(B, T) > 0.15, IGNORE_INDEX)
    head = torch.nn.Linear(D, V)
    # XLM-R's lm_head shape: dense -> gelu -> LayerNorm, then the projection.
    transform = torch.nn.Sequential(torch.nn.Linear(D, D), torch.nn.GELU(), torch.nn.LayerNorm(D))
    fn = transform if with_transform else None

    full_rows = transform(hidden) if with_transform else hidden
    full = torch.nn.functional.cross_entropy(head(full_rows).reshape(-1, V), labels.reshape(-1), ignore_index=-100)
    params = [hidden, head.weight, head.bias, *(transform.parameters() if with_transform else [])]
    full_grads = torch.autograd.grad(full, params)
    M = int((labels != IGNORE_INDEX).sum())
    rows = None if extra_rows is None else M + extra_rows
    out = masked_lm_loss(hidden, labels, head.weight, head.bias, transform=fn, rows=rows)
    grads = torch.autograd.grad(out.loss, params)
    assert abs(out.loss.item() - full.item()) <= 1e-6
    assert out.logits.shape == (rows or M, V)
    assert out.targets[M:].eq(IGNORE_INDEX).all() and out.targets[:M].tolist() == labels[labels != IGNORE_INDEX].tolist()
    for g_full, g in zip(full_grads, grads):
        assert torch.allclose(g_full, g, atol=1e-6)


def test_masked_only_loss_with_nothing_to_predict_is_zero():
    hidden = torch.randn(2, 3, 4, requires_grad=True)
    out = masked_lm_loss(hidden, torch.full((2, 3), IGNORE_INDEX), torch.randn(7, 4))
    assert out.loss.item() == 0.0
    out.loss.backward()  # stays in the graph, so a trainer step does not special-case it
    assert hidden.grad is not None


def test_tlm_batch_xlm_framing():
    batch = tlm_batch([([10, 11], [20]), ([12], [21, 22, 23])], framing=Framing(EOS, EOS, gap=1), lang1_id=4,
                      lang2_id=7, pad_id=PAD)
    # `</s> s1 </s> </s> s2 </s>`; side 2's positions restart at its first </s>; pads continue (as XLM).
    assert batch["input_ids"].tolist() == [[1, 10, 11, 1, 1, 20, 1, 2], [1, 12, 1, 1, 21, 22, 23, 1]]
    assert batch["positions"].tolist() == [[0, 1, 2, 3, 0, 1, 2, 3], [0, 1, 2, 0, 1, 2, 3, 4]]
    assert batch["langs"].tolist() == [[4, 4, 4, 4, 7, 7, 7, 7], [4, 4, 4, 7, 7, 7, 7, 7]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1, 1, 0], [1] * 8]


def test_tlm_batch_xlmr_framing_continuous_positions_and_per_pair_langs():
    batch = tlm_batch([([10, 11, 12], [20, 21]), ([13], [24])], framing=Framing(0, 2, gap=1), lang1_id=[0, 2],
                      lang2_id=[1, 3], pad_id=1, reset_positions=False, max_len=2)
    assert batch["input_ids"].tolist() == [[0, 10, 11, 2, 2, 20, 21, 2], [0, 13, 2, 2, 24, 2, 1, 1]]
    assert batch["positions"].tolist() == [list(range(8))] * 2
    assert batch["langs"].tolist() == [[0, 0, 0, 0, 1, 1, 1, 1], [2, 2, 2, 3, 3, 3, 3, 3]]
    assert batch["attention_mask"].tolist() == [[1] * 8, [1] * 6 + [0, 0]]


def test_tlm_batch_shared_separator_gives_xlm_xnli_framing():
    batch = tlm_batch([([10], [20, 21])], framing=Framing(EOS, EOS, gap=0), lang1_id=3, lang2_id=3, pad_id=PAD,
                      reset_positions=False)
    assert batch["input_ids"].tolist() == [[1, 10, 1, 20, 21, 1]]  # `</s> A </s> B </s>`
    assert batch["positions"].tolist() == [[0, 1, 2, 3, 4, 5]]


def test_clm_batch_shifts_labels_and_ignores_pads():
    x = torch.tensor([[1, 30, 31, 32, 1], [1, 40, 1, 2, 2]])
    batch = clm_batch(x, pad_id=2, lang_id=torch.tensor([5, 6]))
    assert batch["labels"].tolist() == [[30, 31, 32, 1, -100], [40, 1, -100, -100, -100]]
    assert batch["langs"].tolist() == [[5] * 5, [6] * 5]
    assert batch["attention_mask"].tolist() == [[1] * 5, [1, 1, 1, 0, 0]]
    with_context = clm_batch(x, pad_id=2, lang_id=0, context_size=2)
    assert with_context["labels"][:, :2].eq(-100).all() and with_context["langs"].eq(0).all()


def test_language_sampling_probs_match_the_formula():
    counts = {"en": 1000, "fr": 100, "sw": 10, "xx": 0}
    for alpha in (0.3, 0.7, 1.0, 0.0):
        probs = language_sampling_probs(counts, alpha)
        # p_l = n_l^alpha / Σ n^alpha over the languages with data (formats.md §5 / XLM-R paper).
        total = sum(n**alpha for n in (1000, 100, 10))
        assert probs == pytest.approx({"en": 1000**alpha / total, "fr": 100**alpha / total,
                                       "sw": 10**alpha / total, "xx": 0.0})
    assert language_sampling_probs({"a": 3, "b": 1}, 0.0) == {"a": 0.5, "b": 0.5}
    with pytest.raises(ValueError):
        language_sampling_probs(counts, -1)


def test_language_sampler_frequencies_and_determinism():
    sampler = LanguageSampler({"fr": 100, "en": 1000, "sw": 10}, 0.3, seed=1)
    draws = [lang for step in range(4000) for lang in sampler.sample(step)]
    for lang, p in sampler.probs.items():
        assert _within(draws.count(lang) / len(draws), p, len(draws))
    again = LanguageSampler({"en": 1000, "sw": 10, "fr": 100}, 0.3, seed=1)  # dict order does not matter
    assert [again.sample(s, 3) for s in range(50, 60)] == [sampler.sample(s, 3) for s in range(50, 60)]


def test_word_ids_as_tokenizer_lists_with_none_equal_the_tensor_form():
    x = _batch(seed=13, rows=4, width=20, pad_tail=0)
    word_ids = _words(13, 4, 20)
    as_lists = [[None if w < 0 else w for w in row] for row in word_ids.tolist()]
    a = mask_tokens(x, XLM_CFG, generator=torch.Generator().manual_seed(8), word_ids=word_ids)
    b = mask_tokens(x, XLM_CFG, generator=torch.Generator().manual_seed(8), word_ids=as_lists)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert a.pred_mask.any()
