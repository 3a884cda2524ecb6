"""Margin mining and retrieval (xlmlib.evaluation.mining) against the margin formula written out here over the full
similarity matrix (shared/reference/cross-lingual-tasks.md section 7, Artetxe & Schwenk 2019), on 300 German-English
Tatoeba pairs embedded by the shipped xlmlib-mini, with tiles smaller than the data (64 rows) so that merging
across tiles is exercised; plus a 2 x 2 case worked by hand."""

import pytest
import torch

import xlmlib
from xlmlib.api import embed
from xlmlib.evaluation.mining import best_matches, mine, retrieval_accuracy
from xlmlib.intrinsic import retrieval_accuracy as card_retrieval

N = 300
BLOCK = 64


@pytest.fixture(scope="module")
def mini():
    return xlmlib.load("xlmlib-mini", task="encoder")


@pytest.fixture(scope="module")
def tatoeba(assets):
    folder = assets / "tatoeba-laser-v1"
    de = (folder / "tatoeba.deu-eng.deu").read_text(encoding="utf-8").splitlines()[:N]
    en = (folder / "tatoeba.deu-eng.eng").read_text(encoding="utf-8").splitlines()[:N]
    return de, en


@pytest.fixture(scope="module")
def vectors(mini, tatoeba):
    model, tok = mini
    return embed(model, tok, tatoeba[0]), embed(model, tok, tatoeba[1])


def direct_scores(a, b, k, margin):
    """score(x, y) = margin(cos(x, y), sum_{z in NN_k(x)} cos(x, z) / 2k + sum_{z in NN_k(y)} cos(y, z) / 2k)."""
    a = torch.nn.functional.normalize(a.double(), dim=-1)
    b = torch.nn.functional.normalize(b.double(), dim=-1)
    cos = a @ b.T
    if margin is None:
        return cos
    near_x = cos.topk(min(k, cos.shape[1]), dim=1).values.sum(1) / (2 * k)
    near_y = cos.topk(min(k, cos.shape[0]), dim=0).values.sum(0) / (2 * k)
    return cos / (near_x[:, None] + near_y[None, :]) if margin == "ratio" else cos - (near_x[:, None] + near_y[None, :])


@pytest.mark.parametrize("margin", ["ratio", "distance", None])
def test_mine_equals_the_margin_formula(vectors, margin):
    a, b = vectors
    full = direct_scores(a, b, 4, margin)
    best, index = full.max(1)
    got = mine(None, None, a, b, margin=margin, block_size=BLOCK)
    assert sorted(i for i, _, _ in got) == list(range(N))
    assert [j for _, j, _ in sorted(got)] == index.tolist()
    assert [s for _, _, s in sorted(got)] == pytest.approx(best.tolist(), abs=1e-5)
    assert [s for _, _, s in got] == sorted((s for _, _, s in got), reverse=True)


def test_margin_and_cosine_differ_here(vectors):
    """The comparison above can tell the two apart: on these pairs they pick different targets for some sentences."""
    a, b = vectors
    assert (direct_scores(a, b, 4, "ratio").argmax(1) != direct_scores(a, b, 4, None).argmax(1)).any()


def test_threshold_keeps_the_pairs_that_reach_it(vectors):
    a, b = vectors
    every = mine(None, None, a, b, block_size=BLOCK)
    cut = every[N // 3][2]
    kept = mine(None, None, a, b, threshold=cut, block_size=BLOCK)
    assert kept == [p for p in every if p[2] >= cut] and 0 < len(kept) < N


def test_sentences_and_unnormalised_vectors_give_the_same_pairs(mini, tatoeba, vectors):
    model, tok = mini
    a, b = vectors
    from_vectors = mine(None, None, a, b, block_size=BLOCK)
    from_text = mine(model, tok, tatoeba[0], tatoeba[1], block_size=BLOCK)
    assert [p[:2] for p in from_text] == [p[:2] for p in from_vectors]
    scale = torch.rand(N, 1, generator=torch.Generator().manual_seed(0)) * 5 + 0.1
    scaled = mine(None, None, (a * scale).numpy(), b, block_size=BLOCK)
    assert [p[:2] for p in scaled] == [p[:2] for p in from_vectors]
    assert [p[2] for p in scaled] == pytest.approx([p[2] for p in from_vectors], abs=1e-5)


@pytest.mark.parametrize("margin", [None, "ratio"])
def test_retrieval_accuracy_both_directions(vectors, margin):
    a, b = vectors
    full = direct_scores(a, b, 4, margin)
    gold = torch.arange(N)
    got = retrieval_accuracy(None, None, a, b, margin=margin, block_size=BLOCK)
    assert got["forward"] == pytest.approx(float((full.argmax(1) == gold).double().mean()))
    assert got["backward"] == pytest.approx(float((full.argmax(0) == gold).double().mean()))
    assert got["chance"] == 1 / N and got["n"] == N
    assert got["forward"] > 5 / N  # the mini finds translations well above chance: the comparison has hits to count


def test_the_model_card_retrieval_uses_the_same_code(mini, tatoeba, vectors):
    model, tok = mini
    full = direct_scores(*vectors, 4, None)
    gold = torch.arange(N)
    got = card_retrieval(model, tok, *tatoeba)
    assert got == pytest.approx({"forward": float((full.argmax(1) == gold).double().mean()),
                                 "backward": float((full.argmax(0) == gold).double().mean()), "chance": 1 / N})
    assert card_retrieval(model, tok, *tatoeba, margin="ratio")["forward"] == pytest.approx(
        retrieval_accuracy(None, None, *vectors, margin="ratio")["forward"])


def test_hand_worked_two_by_two():
    # a0 = (1, 0), a1 = (0, 1); b0 = (1, 0), b1 = (0.6, 0.8). cos: a0.b0 = 1, a0.b1 = 0.6, a1.b0 = 0, a1.b1 = 0.8.
    # k = 1: r(a0) = 1, r(a1) = 0.8 (best targets); r(b0) = 1, r(b1) = 0.8 (best sources).
    # ratio: a0-b0 = 1 / ((1 + 1) / 2) = 1, a0-b1 = 0.6 / 0.9 = 0.667, a1-b0 = 0, a1-b1 = 0.8 / ((0.8 + 0.8) / 2) = 1.
    # distance: a0-b0 = 1 - 1 = 0, a0-b1 = 0.6 - 0.9 = -0.3, a1-b0 = -0.9, a1-b1 = 0.8 - 0.8 = 0.
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.6, 0.8]])

    def pairs(**kw):
        got = mine(None, None, a, b, **kw)
        return [(i, j) for i, j, _ in got], [s for _, _, s in got]

    assert pairs(k=1) == ([(0, 0), (1, 1)], pytest.approx([1.0, 1.0]))
    assert pairs(k=1, margin="distance") == ([(0, 0), (1, 1)], pytest.approx([0.0, 0.0], abs=1e-6))
    assert pairs(margin=None) == ([(0, 0), (1, 1)], pytest.approx([1.0, 0.8]))
    # k larger than the 2 candidates is cut to 2: r(a0) = (1 + 0.6) / 2 = 0.8, r(b0) = (1 + 0) / 2 = 0.5, so
    # a0-b0 = 1 / ((0.8 + 0.5) / 2) = 1.538...; r(a1) = 0.4, r(b1) = 0.7: a1-b1 = 0.8 / 0.55 = 1.4545...
    assert pairs(k=4) == ([(0, 0), (1, 1)], pytest.approx([1 / 0.65, 0.8 / 0.55]))


def test_ties_go_to_the_lowest_index():
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # targets 1 and 3 are the same vector
    for block_size in (1, 2, 4):  # the tie across tiles, and inside one
        found = best_matches(a, b, margin=None, block_size=block_size, columns=True)
        assert found["index"].tolist() == [1] and found["column_index"].tolist() == [0, 0, 0, 0]


def test_errors():
    a = torch.randn(3, 4)
    with pytest.raises(ValueError, match="margin must be one of"):
        mine(None, None, a, a, margin="cosine")
    with pytest.raises(ValueError, match="different shapes"):
        mine(None, None, a, torch.randn(3, 5))
    with pytest.raises(ValueError, match="aligned, non-empty sides; got 3 and 2"):
        retrieval_accuracy(None, None, a, a[:2])
    with pytest.raises(ValueError, match="src: sentences need a model and its tokenizer"):
        mine(None, None, ["Hallo"], a)
    with pytest.raises(ValueError, match=r"must be a matrix \(N D\)"):
        mine(None, None, torch.randn(4), a)
    assert mine(None, None, a, torch.zeros(0, 4)) == []
