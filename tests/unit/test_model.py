"""Forward-pass contracts that the parity tests do not cover: input validation, the langs contract,
padding independence, causal masking, and head re-use."""

import warnings

import pytest
import torch

import xlmlib
from xlmlib import ModelConfig


def tiny(**over):
    base = {"vocab_size": 40, "dim": 16, "n_layers": 2, "n_heads": 2, "ffn_dim": 32, "max_positions": 12,
            "n_langs": 2, "langs": ("en", "fr"), "dropout": 0.0, "attention_dropout": 0.0}
    base.update(over)
    return ModelConfig(**base)


def tiny_xlmr(**over):
    base = {"vocab_size": 40, "dim": 16, "n_layers": 2, "n_heads": 2, "ffn_dim": 32, "max_positions": 10,
            "position_offset": 2, "type_vocab_size": 1, "use_lang_emb": False, "norm_eps": 1e-5,
            "zero_pad_rows": False, "pad_index": 1, "eos_index": 2, "mask_index": 39, "head_style": "roberta",
            "dropout": 0.0, "attention_dropout": 0.0}
    base.update(over)
    return ModelConfig(**base)


def model_of(cls, cfg, seed=0):
    torch.manual_seed(seed)
    model = cls(cfg)
    model.reset_parameters()
    return model.eval()


def test_out_of_range_ids_name_the_id():
    model = model_of(xlmlib.Encoder, tiny())
    with pytest.raises(ValueError, match="input_ids contains 40, outside \\[0, 39\\]"):
        model(torch.tensor([[5, 40]]), langs=0)
    with pytest.raises(ValueError, match="input_ids contains -1"):
        model(torch.tensor([[5, -1]]), langs=0)


def test_too_long_input_names_the_limit():
    xlm = model_of(xlmlib.Encoder, tiny())
    with pytest.raises(ValueError, match="at most 12 tokens"):
        xlm(torch.full((1, 13), 5), langs=0)
    xlmr = model_of(xlmlib.Encoder, tiny_xlmr())
    xlmr(torch.full((1, 8), 5))  # 8 real tokens use positions 2..9 of the 10-row table
    with pytest.raises(ValueError, match="at most 8 tokens \\(position offset 2\\)"):
        xlmr(torch.full((1, 9), 5))
    # pads do not count against the limit: they all sit on the padding position
    xlmr(torch.tensor([[5] * 8 + [1] * 4]))


def test_langs_contract():
    model = model_of(xlmlib.Encoder, tiny())
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ValueError, match="needs `langs` \\(language ids: en=0, fr=1\\)"):
        model(ids)
    with pytest.raises(ValueError, match="langs contains 2, outside \\[0, 1\\]"):
        model(ids, langs=2)
    full = model(ids, langs=torch.ones_like(ids)).last_hidden_state
    assert torch.equal(model(ids, langs=1).last_hidden_state, full)  # an int broadcasts
    assert not torch.allclose(model(ids, langs=0).last_hidden_state, full)


def test_langs_for_a_model_without_language_embeddings_warn_once():
    model = model_of(xlmlib.Encoder, tiny(use_lang_emb=False))
    ids = torch.tensor([[5, 6, 7]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = model(ids, langs=1).last_hidden_state
        model(ids, langs=1)
    assert [str(w.message) for w in caught] == ["this model has no language embeddings; `langs` is ignored"]
    assert torch.equal(a, model(ids).last_hidden_state)


def test_bad_token_types_and_shapes():
    model = model_of(xlmlib.Encoder, tiny_xlmr())
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ValueError, match="token_type_ids contains 1, outside \\[0, 0\\]"):
        model(ids, token_type_ids=torch.tensor([[0, 1, 1]]))
    with pytest.raises(ValueError, match="input_ids must have shape \\(batch, tokens\\)"):
        model(torch.tensor([5, 6, 7]))
    with pytest.raises(ValueError, match="attention_mask has shape \\(1, 2\\), expected \\(1, 3\\)"):
        model(ids, attention_mask=torch.ones(1, 2))


@pytest.mark.parametrize("make", [tiny, tiny_xlmr, lambda: tiny_xlmr(pre_norm=True, embed_norm=False)])
def test_padding_does_not_change_real_tokens(make):
    """Without an attention_mask, pads are masked from the ids (HF XLM-R would attend them)."""
    cfg = make()
    model = model_of(xlmlib.Encoder, cfg)
    ids = torch.tensor([[5, 6, 7, 8]])
    langs = {"langs": 0} if cfg.has_lang_emb else {}
    alone = model(ids, **langs).last_hidden_state
    padded = model(torch.tensor([[5, 6, 7, 8, cfg.pad_index, cfg.pad_index]]), **langs).last_hidden_state
    torch.testing.assert_close(padded[:, :4], alone, atol=1e-6, rtol=0)


def test_causal_left_padding_equals_unpadded():
    """Our causal mask never attends pads (HF XLM's does on the left), so a left-padded row with explicit
    positions equals the unpadded sequence."""
    model = model_of(xlmlib.CausalLM, tiny())
    ids = torch.tensor([[5, 6, 7]])
    alone = model(ids, langs=0).logits
    left = torch.tensor([[2, 2, 5, 6, 7]])
    mask = (left != 2).long()
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    out = model(left, attention_mask=mask, positions=positions, langs=0).logits
    torch.testing.assert_close(out[:, 2:], alone, atol=1e-5, rtol=0)


def test_causal_outputs_ignore_the_future():
    model = model_of(xlmlib.CausalLM, tiny())
    a = model(torch.tensor([[5, 6, 7, 8]]), langs=0).logits
    b = model(torch.tensor([[5, 6, 9, 10]]), langs=0).logits
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2:], b[:, 2:])


def test_cached_decoding_equals_full_forward():
    model = model_of(xlmlib.CausalLM, tiny_xlmr())
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    full = model(ids).logits
    cache = xlmlib.KVCache()
    steps = [model(ids[:, :2], cache=cache).logits]
    for t in range(2, 5):
        mask = torch.ones(1, t + 1, dtype=torch.long)
        steps.append(model(ids[:, t:t + 1], attention_mask=mask, positions=torch.tensor([[t + 2]]), cache=cache).logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_losses_follow_the_reference_definitions():
    """Cross-entropy definitions written out by hand (the references use F.cross_entropy the same way)."""
    model = model_of(xlmlib.CausalLM, tiny_xlmr())
    ids = torch.tensor([[5, 6, 7, 8]])
    out = model(ids, labels=ids)
    logp = out.logits.log_softmax(-1)
    manual = -(logp[0, 0, 6] + logp[0, 1, 7] + logp[0, 2, 8]) / 3
    torch.testing.assert_close(out.loss, manual)
    reg = model_of(xlmlib.SequenceClassifier, tiny_xlmr(num_labels=1))
    out = reg(ids, labels=torch.tensor([0.5]))
    torch.testing.assert_close(out.loss, (out.logits.squeeze() - 0.5) ** 2)


def full_projection_loss(model, ids, labels):
    """The LM loss through every row's logits (B x T x V), computed here beside the production head: what
    the masked-only training loss must equal."""
    h, _ = model.encode(ids)
    logits = model.lm_head(h, model.embed.tokens)
    if model.shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    return xlmlib.losses.full_lm_loss(logits, labels)


@pytest.mark.parametrize("cls", [xlmlib.MaskedLM, xlmlib.CausalLM])
def test_masked_only_training_loss_equals_the_full_projection(cls):
    """Training mode projects only labelled rows; loss and gradients equal the full B x T x V projection."""
    cfg = tiny_xlmr()
    torch.manual_seed(3)
    ids = torch.randint(4, 40, (3, 8))
    labels = torch.where(torch.rand(3, 8) < 0.3, ids, torch.full_like(ids, -100))
    results = []
    for masked_only in (True, False):
        model = model_of(cls, cfg, seed=4).train()  # dropout is 0 in tiny configs, so train == eval numerics
        out = model(ids, labels=labels)
        loss = out.loss if masked_only else full_projection_loss(model, ids, labels)
        assert out.logits is None  # training with labels projects the labelled rows only
        loss.backward()
        results.append((loss, {n: p.grad for n, p in model.named_parameters()}))
    (fast, fast_grads), (full, full_grads) = results
    torch.testing.assert_close(fast, full, atol=1e-6, rtol=0)
    for name, g in full_grads.items():
        torch.testing.assert_close(fast_grads[name], g, atol=1e-6, rtol=1e-5)


def test_beam_qa_on_inputs_shorter_than_the_beam():
    """start_n_top/end_n_top (5) larger than the sequence: the beam narrows to the tokens there are."""
    model = model_of(xlmlib.QuestionAnsweringBeam, tiny_xlmr())
    out = model(torch.tensor([[5, 6, 7]]))
    assert out.start_top_index.shape == (1, 3) and out.end_top_index.shape == (1, 9)
