"""Translation training data: lambda schedules, the original's noise rules (xlm-mt.md section 4), step
schedule parsing, the batches of MTSource (framing, labels, languages, weights) and the word accuracy
of the evaluation."""

from __future__ import annotations

import pytest
import torch

from xlmlib.mt.data import TASK_BT, TASK_MT, Lambda, MTSource, Noise, parse_steps
from xlmlib.mt.train import word_accuracy

from .synthetic import tiny_config


def test_lambda_schedules():
    assert Lambda("0.5")(123) == 0.5
    ae = Lambda("0:1,100000:0.1,300000:0")  # the README's AE schedule
    # Linear between points (hand-computed), then the last value held.
    assert ae(0) == 1.0 and ae(50000) == pytest.approx(0.55) and ae(200000) == pytest.approx(0.05)
    assert ae(300000) == 0.0 and ae(10**7) == 0.0
    assert Lambda("0").always_zero and not ae.always_zero
    for bad in ("x", "5:1,10:0", "0:1,0:2"):
        with pytest.raises(ValueError, match="lambda"):
            Lambda(bad)


def test_noise_rules():
    words = list(range(100, 120))
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        shuffled = Noise(3.0, 0.0, 0.0)(words, 5, g)
        assert sorted(shuffled) == words
        # argsort(index + U[0, 3)): a word can only be overtaken by words less than 3 places behind it.
        assert all(abs(shuffled.index(w) - i) < 3 for i, w in enumerate(words))
    dropped = [Noise(0, 0.5, 0.0)(words, 5, g) for _ in range(200)]
    assert all(d and set(d) <= set(words) for d in dropped)
    assert 0.4 < sum(map(len, dropped)) / (200 * len(words)) < 0.6
    assert all(len(Noise(0, 0.99, 0.0)([7, 8], 5, g)) == 1 for _ in range(20))  # one word is always kept
    blanked = Noise(0, 0.0, 0.5)(words, 5, g)
    assert len(blanked) == len(words) and 5 in blanked and all(b in (w, 5) for b, w in zip(blanked, words))
    with pytest.raises(ValueError, match="word_shuffle"):
        Noise(0.5)


def test_step_parsing():
    steps = parse_steps(ae=["de"], mt=["de-en"], bt=["en-de-en"])
    assert [(s.kind, s.src, s.tgt) for s in steps] == [("ae", "de", "de"), ("mt", "de", "en"), ("bt", "en", "de")]
    for kwargs in ({"mt": ["de"]}, {"bt": ["de-en-fr"]}, {}):
        with pytest.raises(ValueError):
            parse_steps(**kwargs)


def _source(steps, lambdas=None):
    cfg = tiny_config()
    para = {("en", "fr"): [([10, 11, 12], [40, 41]), ([13], [42, 43, 44])]}
    mono = {"en": [[10, 11, 12, 13], [14]], "fr": [[40, 41]]}
    lambdas = lambdas or {"ae": Lambda("1"), "mt": Lambda("1"), "bt": Lambda("0:1,2:0")}
    return MTSource(steps, mono=mono, para=para, cfg=cfg, lang_ids={"en": 0, "fr": 1}, lambdas=lambdas,
                    noise=Noise(3.0, 0.1, 0.1), batch_size=4, seed=0)


def test_batches_follow_the_schedule():
    source = _source(parse_steps(ae=["en"], mt=["en-fr"], bt=["fr-en-fr"]))
    ae, mt, bt = source.batch(0), source.batch(1), source.batch(2)
    for batch in (ae, mt, bt):
        ids = batch["decoder_input_ids"]
        assert (ids[:, 0] == 1).all() and (batch["labels"][:, 0] == -100).all()  # </s> first, never predicted
        assert ((batch["labels"] == -100) == ((ids == 2) | (torch.arange(ids.shape[1]) == 0))).all()
        assert (batch["input_ids"][:, 0] == 1).all()
    assert (ae["langs"] == 0).all() and (ae["decoder_langs"] == 0).all() and (ae["task"] == TASK_MT).all()
    assert (mt["langs"] == 0).all() and (mt["decoder_langs"] == 1).all()
    # bt: monolingual fr, translated into en (bt_langs), decoded back into fr.
    assert (bt["task"] == TASK_BT).all() and (bt["langs"] == 1).all() and (bt["bt_langs"] == 0).all()
    assert (bt["decoder_langs"] == 1).all() and torch.equal(bt["input_ids"], bt["decoder_input_ids"])
    assert bt["weight"][0] == 1.0 and source.batch(5)["weight"][0] == 0.5  # iteration 1 of "0:1,2:0"
    assert torch.equal(source.batch(3)["input_ids"], _source(source.steps).batch(3)["input_ids"])  # replayable


def test_missing_data_is_named():
    with pytest.raises(ValueError, match="monolingual de"):
        _source(parse_steps(ae=["de"]))


def test_word_accuracy_compares_positions_over_the_longer_sentence():
    # Hand-counted: 2 of 3 positions, 1 of 2 (a missing word counts as wrong), 0 of 2 (so does an extra one).
    assert word_accuracy(["a b c", "x", "q r"], ["a c c", "x y", "s"]) == pytest.approx(3 / 7)
    assert word_accuracy([""], [""]) == 0.0
