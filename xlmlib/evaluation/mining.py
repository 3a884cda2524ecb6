"""Bitext retrieval and mining over sentence vectors: exact nearest neighbours computed tile by tile, margin
scoring (Artetxe & Schwenk, ACL 2019), `mine` (each source sentence's best target) and `retrieval_accuracy`
(Tatoeba: how often the best target of sentence i is its translation i, both directions).

Facts: shared/reference/cross-lingual-tasks.md section 7. With cos the cosine of unit vectors,
    score(x, y) = margin(cos(x, y), r(x) / 2 + r(y) / 2)
where r(x) is the mean cos of x to its k nearest targets and r(y) the mean cos of y to its k nearest sources;
margin(a, b) = a / b ("ratio", the paper's best) or a - b ("distance"); margin=None scores by cos(x, y) alone.
The best target of x is the argmax of score(x, .) over all targets (exact; LASER's mining script only looks at
the k nearest by cosine), ties going to the lowest index as torch.argmax.

Memory: similarities exist one block_size x block_size tile at a time; what is kept is k values per sentence
(first pass, margin only) and the best target per sentence (second pass). Besides the vectors that is
O(block_size^2 + (N + M) k), whatever N and M: scripts/bench_mining.py measures it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from tqdm.auto import tqdm

MARGINS = (None, "ratio", "distance")
BLOCK_SIZE = 4096  # a tile is 4096 x 4096 float32 = 64 MiB; the scoring pass holds about three of them


def _check(margin, k: int, block_size: int) -> None:
    if margin not in MARGINS:
        raise ValueError(f"margin must be one of {MARGINS}, got {margin!r}")
    if int(k) < 1 or int(block_size) < 1:
        raise ValueError(f"k and block_size must be at least 1, got k={k}, block_size={block_size}")


def vectors(model, tok, x, *, lang: str | None = None, batch_size: int = 32, progress: bool | None = None,
            what: str = "src") -> torch.Tensor:
    """Unit-length float32 vectors (N D): sentences are embedded by xlmlib.embed (mean pooling); a tensor or
    array of vectors is normalised (float32 vectors of unit length already are used as they are, not copied)."""
    if isinstance(x, torch.Tensor) or hasattr(x, "__array__"):
        v = torch.as_tensor(x).float()
        if v.dim() != 2:
            raise ValueError(f"{what}: vectors must be a matrix (N D), got shape {tuple(v.shape)}")
        if len(v) and bool(((v.norm(dim=-1) - 1).abs() < 1e-5).all()):
            return v
        return torch.nn.functional.normalize(v, dim=-1)
    if model is None or tok is None:
        raise ValueError(f"{what}: sentences need a model and its tokenizer (or pass vectors)")
    from ..api import embed

    return embed(model, tok, [x] if isinstance(x, str) else list(x), lang=lang, batch_size=batch_size,
                 progress=progress)


def _tiles(n: int, m: int, size: int) -> Iterator[tuple[slice, slice]]:
    for i in range(0, n, size):
        for j in range(0, m, size):
            yield slice(i, min(i + size, n)), slice(j, min(j + size, m))


def _keep_top(best: torch.Tensor, sim: torch.Tensor) -> torch.Tensor:
    """The k largest of each row among `best` (R k) and the new similarities `sim` (R C)."""
    k = best.shape[1]
    new = sim.topk(min(k, sim.shape[1]), dim=1).values
    return torch.cat([best, new], dim=1).topk(k, dim=1).values


def neighbour_means(a: torch.Tensor, b: torch.Tensor, k: int, *, block_size: int = BLOCK_SIZE,
                    bar=None) -> tuple[torch.Tensor, torch.Tensor]:
    """r(x) for every row of a (mean cos to its k nearest rows of b) and r(y) for every row of b (to its k nearest
    rows of a), both directions in one pass over the tiles; k is cut to the number of candidates."""
    top_a = a.new_full((len(a), min(k, len(b))), float("-inf"))
    top_b = b.new_full((len(b), min(k, len(a))), float("-inf"))
    for rows, cols in _tiles(len(a), len(b), block_size):
        sim = a[rows] @ b[cols].T
        top_a[rows] = _keep_top(top_a[rows], sim)
        top_b[cols] = _keep_top(top_b[cols], sim.T)
        if bar is not None:
            bar.update()
    return top_a.mean(1), top_b.mean(1)


def _scored(sim: torch.Tensor, ra, rb, margin) -> torch.Tensor:
    """score(x, y) of one tile, in place of its similarities."""
    if margin is None:
        return sim
    mean = ra[:, None] + rb[None, :]
    mean.mul_(0.5)
    return sim.div_(mean) if margin == "ratio" else sim.sub_(mean)


def _improve(best, where, values, index, offset: int) -> None:
    """Keep the new values that beat the best so far (strictly: the earlier, lower index wins a tie)."""
    better = values > best
    best[better] = values[better]
    where[better] = index[better] + offset


def best_matches(a: torch.Tensor, b: torch.Tensor, *, k: int = 4, margin: str | None = "ratio",
                 block_size: int = BLOCK_SIZE, columns: bool = False, progress: bool | None = None) -> dict:
    """For unit vectors a (N D) and b (M D): {"score", "index"}: the best score of each row of a and the row of b
    that has it; with columns=True also {"column_score", "column_index"}: the best row of a for each row of b
    (the backward direction; the margin score is symmetric in its two sides)."""
    _check(margin, k, block_size)
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"vectors of different shapes: {tuple(a.shape)} and {tuple(b.shape)}")
    n_tiles = -(-len(a) // block_size) * -(-len(b) // block_size)
    passes = 1 if margin is None else 2
    show = progress if progress is not None else len(a) * len(b) >= 10**8  # about a second of work and more
    out = {"score": a.new_full((len(a),), float("-inf")), "index": a.new_zeros(len(a), dtype=torch.long)}
    if columns:
        out |= {"column_score": b.new_full((len(b),), float("-inf")),
                "column_index": b.new_zeros(len(b), dtype=torch.long)}
    if not len(a) or not len(b):
        return out
    with tqdm(total=n_tiles * passes, disable=not show, desc="mine", unit="tile") as bar:
        ra = rb = None
        if margin is not None:
            ra, rb = neighbour_means(a, b, k, block_size=block_size, bar=bar)
        for rows, cols in _tiles(len(a), len(b), block_size):
            score = _scored(a[rows] @ b[cols].T, None if ra is None else ra[rows], None if rb is None else rb[cols],
                            margin)
            values, index = score.max(1)
            _improve(out["score"][rows], out["index"][rows], values, index, cols.start)
            if columns:
                values, index = score.max(0)
                _improve(out["column_score"][cols], out["column_index"][cols], values, index, rows.start)
            bar.update()
    return out


def mine(model, tok, src, tgt, *, k: int = 4, margin: str | None = "ratio", threshold: float | None = None,
         src_lang: str | None = None, tgt_lang: str | None = None, batch_size: int = 32,
         block_size: int = BLOCK_SIZE, progress: bool | None = None) -> list[tuple[int, int, float]]:
    """Each source sentence's best target, as (i, j, score) best first (ties: lower i first), only those with
    score >= threshold when one is given. src / tgt: sentences (embedded by xlmlib.embed with model, tok and
    src_lang / tgt_lang) or vectors (N D; normalised here; model and tok may then be None). margin: "ratio",
    "distance" (k nearest neighbours each side) or None (plain cosine). Memory does not grow with N x M."""
    _check(margin, k, block_size)
    a = vectors(model, tok, src, lang=src_lang, batch_size=batch_size, progress=progress, what="src")
    b = vectors(model, tok, tgt, lang=tgt_lang, batch_size=batch_size, progress=progress, what="tgt")
    if not len(b):
        return []
    found = best_matches(a, b.to(a.device), k=k, margin=margin, block_size=block_size, progress=progress)
    score, index = found["score"].tolist(), found["index"].tolist()
    keep = [i for i in range(len(score)) if threshold is None or score[i] >= threshold]
    keep.sort(key=lambda i: -score[i])  # a stable sort: equal scores stay in source order
    return [(i, index[i], score[i]) for i in keep]


def retrieval_accuracy(model, tok, src, tgt, *, margin: str | None = None, k: int = 4, src_lang: str | None = None,
                       tgt_lang: str | None = None, batch_size: int = 32, block_size: int = BLOCK_SIZE,
                       progress: bool | None = None) -> dict:
    """Line i of src and of tgt are translations (Tatoeba). {"forward": share of source sentences whose best target
    is their translation, "backward": the same from the target side, "chance": 1 / n, "n": n}; src / tgt are
    sentences or vectors as for mine; margin=None (the default) ranks by cosine, as LASER and XTREME report."""
    _check(margin, k, block_size)
    a = vectors(model, tok, src, lang=src_lang, batch_size=batch_size, progress=progress, what="src")
    b = vectors(model, tok, tgt, lang=tgt_lang, batch_size=batch_size, progress=progress, what="tgt")
    if len(a) != len(b) or not len(a):
        raise ValueError(f"retrieval needs aligned, non-empty sides; got {len(a)} and {len(b)} lines")
    found = best_matches(a, b.to(a.device), k=k, margin=margin, block_size=block_size, columns=True,
                         progress=progress)
    gold = torch.arange(len(a), device=a.device)
    return {"forward": float((found["index"] == gold).float().mean()),
            "backward": float((found["column_index"] == gold).float().mean()), "chance": 1 / len(a), "n": len(a)}


__all__ = ["BLOCK_SIZE", "MARGINS", "best_matches", "mine", "neighbour_means", "retrieval_accuracy", "vectors"]
