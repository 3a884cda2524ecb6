"""Greedy and beam search of the translator against the rules of shared/reference/xlm-mt.md section 3,
on scripted models whose next-word probabilities are written out here (expected ids derived by hand in
the comments), and KV-cached decoding against recomputing the whole prefix at every step."""

from __future__ import annotations

import math

import pytest
import torch

import xlmlib
from xlmlib.mt import search as mt_search

EOS, PAD, A, B = 1, 2, 3, 4  # ids: <s>=0, </s>=1, <pad>=2, then two words
V = 5


class Scripted:
    """Next-word probabilities as a function of the row's prefix (a tuple of ids, leading </s> included).
    `table` maps a prefix to {word: probability}; the rest of the mass is spread over the other ids."""

    def __init__(self, table, rows: int, default=None):
        self.table, self.default = table, default or {A: 0.5, B: 0.3, EOS: 0.1}
        self.prefixes = [() for _ in range(rows)]

    def step(self, tokens):
        self.prefixes = [p + (int(t),) for p, t in zip(self.prefixes, tokens)]
        out = []
        for p in self.prefixes:
            probs = self.table.get(p, self.default)
            rest = (1 - sum(probs.values())) / (V - len(probs))
            out.append([math.log(probs.get(w, rest)) for w in range(V)])
        return torch.tensor(out)

    def reorder(self, index):
        self.prefixes = [self.prefixes[i] for i in index.tolist()]


class PerRow(Scripted):
    """Greedy keeps rows in place, so each row can follow its own table."""

    def __init__(self, tables):
        super().__init__({}, len(tables))
        self.tables = tables

    def step(self, tokens):
        rows = []
        for i, t in enumerate(self.tables):
            self.table = t
            rows.append(Scripted.step(self, tokens)[i])
            self.prefixes = [p[:-1] for p in self.prefixes]
        self.prefixes = [p + (int(t),) for p, t in zip(self.prefixes, tokens)]
        return torch.stack(rows)


def test_greedy_forced_final_eos_and_dropped_word():
    # Row 0 always prefers A; with max_new_tokens=3 (max_len 4 slots) it is still open after slot 3, so
    # the A chosen there is overwritten by </s>. Row 1 says B then </s>, then gets pads.
    tables = [{}, {(EOS,): {B: 0.9}, (EOS, B): {EOS: 0.9}}]
    out = mt_search.greedy(PerRow(tables), 2, 4, EOS, PAD)
    assert out.tolist() == [[EOS, A, A, EOS], [EOS, B, EOS, PAD]]
    # Both rows finished before the limit: the output is as long as the longest row, nothing forced.
    out = mt_search.greedy(PerRow([tables[1], {(EOS,): {EOS: 0.9}}]), 2, 9, EOS, PAD)
    assert out.tolist() == [[EOS, B, EOS], [EOS, EOS, PAD]]


def test_default_length_rule():
    lengths = torch.tensor([6, 3])  # both </s> counted
    assert mt_search.max_len_for(lengths, None) == int(1.5 * 6 + 10) == 19
    assert mt_search.max_len_for(lengths, 7) == 8  # every id after the leading </s>
    # A model that never says </s> fills all 19 slots: </s> + 17 words + forced </s>.
    out = mt_search.greedy(Scripted({}, 1, default={A: 0.9}), 1, 19, EOS, PAD)
    assert out.shape == (1, 19) and out[0, 0] == out[0, -1] == EOS and (out[0, 1:-1] == A).all()


# One-beam search vs greedy: from </s>, P(</s>) = 0.6 > P(A) = 0.4, so greedy stops at once: `</s> </s>`.
# Beam k=1, early_stopping=False: step 1 offers prefix (</s>) with log 0.6 -> score -0.511 / 1 and keeps A
# as the beam (log 0.4 = -0.916); step 2: done test = worst -0.511 >= best sum / (max_len-1): best sum is
# -0.916 + log 0.95 = -0.968, / 9 = -0.108, not done; (</s> A) + </s> gives score -0.968 / 2 = -0.484 >
# -0.511, so it replaces the first. Later sums fall below -0.484 * 9, so the search ends with `</s> A </s>`.
ONE_BEAM = {(EOS,): {EOS: 0.6, A: 0.4 - 3e-6}, (EOS, A): {EOS: 0.95, B: 0.05 - 3e-6}}


def test_one_beam_equals_greedy_only_with_early_stopping():
    greedy = mt_search.greedy(Scripted(ONE_BEAM, 1), 1, 10, EOS, PAD)
    assert greedy.tolist() == [[EOS, EOS]]
    late = mt_search.beam_search(Scripted(ONE_BEAM, 1), 1, 1, 10, EOS, PAD, early_stopping=False)
    assert late.tolist() == [[EOS, A, EOS]]
    early = mt_search.beam_search(Scripted(ONE_BEAM, 1), 1, 1, 10, EOS, PAD, early_stopping=True)
    assert early.tolist() == greedy.tolist()


# length_penalty: with k=2, finished hypotheses (</s>) sum log 0.5 = -0.693 (len 1) and (</s> A B) sum
# log 0.45 + log 0.9 + log 0.9 = -1.009 (len 3). Penalty 1: -0.693 vs -0.336 -> the long one wins.
# Penalty 0: scores are the sums, -0.693 > -1.009 -> the short one wins.
PENALTY = {(EOS,): {EOS: 0.5, A: 0.45}, (EOS, A): {B: 0.9}, (EOS, A, B): {EOS: 0.9},
           (EOS, B): {EOS: 0.01, B: 0.01}}


@pytest.mark.parametrize("penalty,expected", [(1.0, [EOS, A, B, EOS]), (0.0, [EOS, EOS])])
def test_length_penalty_picks_the_winner(penalty, expected):
    out = mt_search.beam_search(Scripted(PENALTY, 2), 1, 2, 12, EOS, PAD, length_penalty=penalty)
    assert out.tolist() == [expected]


def test_beam_at_max_len_has_greedys_shape():
    # Never </s>: at the last step every candidate is offered as finished; output `</s>` + 2 words + `</s>`.
    out = mt_search.beam_search(Scripted({}, 6, default={A: 0.6, B: 0.35}), 2, 3, 4, EOS, PAD)
    assert out.tolist() == [[EOS, A, A, EOS]] * 2


def test_beam_hypotheses_pool():
    pool = mt_search.BeamHypotheses(2, max_len=5, length_penalty=1.0, early_stopping=False)
    pool.add(torch.tensor([1, 3]), -2.0)       # score -1.0
    pool.add(torch.tensor([1, 3, 4]), -1.5)    # score -0.5
    assert pool.worst == -1.0 and pool.is_done(-8.0) and not pool.is_done(-3.0)  # -1 >= -8/4; -1 < -3/4
    pool.add(torch.tensor([1]), -0.8)           # score -0.8 > worst: evicts the -1.0, worst becomes -0.8
    assert sorted(s for s, _ in pool.hyps) == [-0.8, -0.5] and pool.worst == -0.8
    pool.add(torch.tensor([1, 4]), -3.0)        # score -1.5 < worst: refused
    assert len(pool.hyps) == 2
    assert pool.is_done(-3.2)                   # -0.8 >= -3.2 / 4
    assert not pool.is_done(-3.0)               # -0.8 <  -3.0 / 4 = -0.75
    assert pool.best().tolist() == [1, 3, 4]


def _tiny(seed=0, std=0.3):
    """A random translator whose outputs vary with the source and the step (large position vectors; with
    the default 0.02 init every row repeats one word), so the searches below have something to decide."""
    cfg = xlmlib.ModelConfig(vocab_size=30, dim=32, n_layers=2, n_heads=4, ffn_dim=64, n_langs=2,
                             langs=("en", "fr"), dropout=0.0, attention_dropout=0.0, init_std=std)
    torch.manual_seed(seed)
    model = xlmlib.Translator(cfg)
    model.reset_parameters()
    with torch.no_grad():
        model.encoder.embed.positions.weight.mul_(10.0)
        model.decoder.embed.positions.weight.mul_(10.0)
    return model.eval()


class Uncached:
    """Recomputes the decoder over the whole prefix at every step (no KV cache, no stored memory)."""

    def __init__(self, model, src, tgt_lang):
        self.model, self.src, self.prefix, self.lang = model, src, None, tgt_lang

    def step(self, tokens):
        self.prefix = tokens[:, None] if self.prefix is None else torch.cat([self.prefix, tokens[:, None]], 1)
        keep = torch.ones_like(self.prefix, dtype=torch.bool)
        return self.model(self.src, langs=0, decoder_input_ids=self.prefix, decoder_attention_mask=keep,
                          decoder_langs=self.lang).logits[:, -1]

    def reorder(self, index):
        self.prefix, self.src = self.prefix[index], self.src[index]


SRC = torch.tensor([[1, 10, 11, 12, 13, 1], [1, 14, 15, 1, 2, 2], [1, 16, 1, 2, 2, 2]])


def test_cached_decoding_equals_uncached():
    model = _tiny(std=0.3)
    max_len = mt_search.max_len_for((SRC != 2).sum(1), None)
    cached = model.generate(SRC, langs=0, tgt_lang=1)
    assert len(set(cached[:, 1:-1].flatten().tolist())) >= 4  # the rows say different things
    uncached = mt_search.greedy(Uncached(model, SRC, 1), 3, max_len, EOS, PAD)
    assert torch.equal(cached, uncached)
    model = _tiny(std=0.1)
    for k in (2, 4):
        cached = model.generate(SRC, langs=0, tgt_lang=1, num_beams=k, max_new_tokens=12)
        assert len(set(cached[:, 1:-1].flatten().tolist())) >= 4
        rows = torch.arange(3).repeat_interleave(k)
        uncached = mt_search.beam_search(Uncached(model, SRC[rows], 1), 3, k, 13, EOS, PAD)
        assert torch.equal(cached, uncached)


def test_step_logits_match_teacher_forcing():
    model = _tiny(1)
    tgt = torch.tensor([[1, 5, 6, 7, 8], [1, 9, 10, 11, 12], [1, 13, 14, 15, 16]])
    full = model(SRC, langs=0, decoder_input_ids=tgt, decoder_langs=1).logits
    from xlmlib.mt.model import Stepper

    enc, mask = model.encode(SRC, langs=0)
    stepper = Stepper(model.decoder, enc, mask, torch.ones(3, 1, dtype=torch.long))
    for t in range(tgt.shape[1]):
        assert (stepper.step(tgt[:, t]) - full[:, t]).abs().max() <= 1e-5


def test_generate_rows_and_langs():
    model = _tiny()
    out = model.generate(SRC, langs=0, tgt_lang=1, num_beams=3, max_new_tokens=6)
    assert (out[:, 0] == EOS).all()
    for row in out.tolist():  # `</s> y1 ... ym </s>` then pads only
        end = row.index(EOS, 1)
        assert set(row[end + 1:]) <= {PAD} and PAD not in row[:end]
    with pytest.raises(ValueError, match="tgt_lang"):
        model.generate(SRC, langs=0)
    assert not torch.equal(model.generate(SRC, langs=0, tgt_lang=0), model.generate(SRC, langs=0, tgt_lang=1))
