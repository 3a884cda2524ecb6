"""Model-independent pretraining objectives: MLM masking, TLM/CLM batches, language sampling (the LM loss is in losses.py).

Pure tensor functions; nothing here knows the model. Shapes: B batch, T time, D hidden, V vocabulary,
M number of predicted positions. Facts about the original recipes come from reference/formats.md §5
(XLM xlm/trainer.py mask_out, xlm/utils.py concat_batches, the CLM step and lg_sampling_factor).

Positions returned here are 0-based; the model adds its family's offset (XLM-R starts at pad_id + 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from .family import Framing
from .losses import IGNORE_INDEX


@dataclass(frozen=True)
class MaskingConfig:
    """How MLM chooses and corrupts positions.

    mlm_probability: fraction of eligible units (tokens, or words under whole-word masking) predicted.
    split: (mask, random, keep) shares of the predicted units; XLM's word_mask_keep_rand "0.8,0.1,0.1".
    exact_count: choose exactly ceil(p·n) units without replacement instead of an independent Bernoulli(p)
      per unit (XLM does this whenever sample_alpha > 0; XLM-R/fairseq use dynamic Bernoulli-style masking).
    """

    vocab_size: int
    mask_id: int
    pad_id: int
    special_ids: tuple[int, ...] = ()
    mlm_probability: float = 0.15
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    exact_count: bool = False

    def __post_init__(self):
        if not 0.0 < self.mlm_probability <= 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1], got {self.mlm_probability}")
        if len(self.split) != 3 or min(self.split) < 0 or not math.isclose(sum(self.split), 1.0):
            raise ValueError(f"split must be three non-negative shares summing to 1, got {self.split}")
        object.__setattr__(self, "special_ids", tuple(int(i) for i in self.special_ids))
        outside = [i for i in (self.mask_id, self.pad_id, *self.special_ids) if not 0 <= i < self.vocab_size]
        if outside:
            raise ValueError(f"ids {outside} are outside the vocabulary [0, {self.vocab_size})")

    @property
    def never_predicted(self) -> tuple[int, ...]:
        """Ids that are never chosen for prediction and never drawn as random replacements."""
        return tuple(sorted({self.pad_id, self.mask_id, *self.special_ids}))


class MaskedBatch(NamedTuple):
    input_ids: torch.Tensor  # (B, T) corrupted inputs
    labels: torch.Tensor  # (B, T) original id at predicted positions, IGNORE_INDEX elsewhere
    pred_mask: torch.Tensor  # (B, T) bool, True where a prediction is made


def frequency_weights(counts, alpha: float, *, pad_id: int, special_ids: Sequence[int] = ()) -> torch.Tensor:
    """XLM's sample_alpha position scores: weight[v] ∝ max(count_v, 1) ** -alpha (a (V,) float64 tensor).

    As XLM xlm/trainer.py (params.mask_scores): the pad and every id with a zero count get weight 0, so
    they are never chosen. We also zero `special_ids`, which XLM relies on their zero counts for.
    """
    counts_t = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
    weights = counts_t.clamp(min=1.0).pow(-alpha)
    weights[counts_t <= 0] = 0.0
    weights[pad_id] = 0.0
    weights[list(special_ids)] = 0.0
    return weights


def _units(eligible: torch.Tensor, word_ids: torch.Tensor | None) -> tuple[torch.Tensor, int]:
    """Index every eligible position by the unit it belongs to: itself, or its (row, word).

    Returns (unit_of_position (B, T) long with -1 where not eligible, number of units).
    """
    unit = torch.full_like(eligible, -1, dtype=torch.long)
    if word_ids is None:
        unit[eligible] = torch.arange(int(eligible.sum()), device=eligible.device)
        return unit, int(eligible.sum())
    eligible = eligible & (word_ids >= 0)
    rows = torch.arange(word_ids.shape[0], device=word_ids.device)[:, None].expand_as(word_ids)
    key = rows * (int(word_ids.max()) + 1) + word_ids
    uniq, inverse = torch.unique(key[eligible], return_inverse=True)
    unit[eligible] = inverse
    return unit, uniq.numel()


def _choose_units(n_units, config, unit_weights, generator) -> torch.Tensor:
    """Bool (n_units,) of chosen units: Bernoulli(p), or exactly ceil(p·n) drawn without replacement."""
    if n_units == 0:
        return torch.zeros(0, dtype=torch.bool)
    p = config.mlm_probability
    if unit_weights is None and not config.exact_count:
        return torch.rand(n_units, generator=generator) < p
    weights = torch.ones(n_units, dtype=torch.float64) if unit_weights is None else unit_weights
    # XLM mask_out takes ceil(p·n) with n counting every position, pads and </s> included (they just have
    # weight 0). We count eligible units, so p is the rate over predictable tokens; in XLM's bptt streams
    # (no pads, one </s> per sentence) XLM predicts slightly more than p of the real tokens.
    # torch.multinomial caps the categories at 2**24, far above a batch's B·T.
    k = min(math.ceil(p * n_units), int((weights > 0).sum()))
    chosen = torch.zeros(n_units, dtype=torch.bool)
    if k > 0:
        chosen[torch.multinomial(weights, k, replacement=False, generator=generator)] = True
    return chosen


def _unit_weights(input_ids, unit, n_units, token_weights) -> torch.Tensor | None:
    """A unit's weight is the mean of its tokens' weights (a lone token: its own weight)."""
    if token_weights is None:
        return None
    sel = unit >= 0
    w = token_weights.to(torch.float64).cpu()[input_ids[sel]]
    total = torch.zeros(n_units, dtype=torch.float64).index_add_(0, unit[sel], w)
    size = torch.zeros(n_units, dtype=torch.float64).index_add_(0, unit[sel], torch.ones_like(w))
    return total / size.clamp(min=1)


def _corrupt(input_ids, pred_mask, unit, n_units, config, generator) -> torch.Tensor:
    """Apply the (mask, random, keep) split to the predicted positions."""
    # One draw per unit decides mask / random / keep, so a whole word is corrupted the same way.
    in_unit = unit >= 0
    u = torch.rand(n_units, generator=generator)
    u_tok = torch.ones_like(input_ids, dtype=torch.float)
    u_tok[in_unit] = u[unit[in_unit]].float()
    to_mask = pred_mask & (u_tok < config.split[0])
    to_random = pred_mask & (u_tok >= config.split[0]) & (u_tok < config.split[0] + config.split[1])

    # Random replacements come from the non-special vocabulary. XLM draws uniformly over all n_words,
    # specials included (formats.md §5); we exclude them so a "random" token never looks like framing,
    # padding or <mask>, which would teach the model a signal that real inputs never carry.
    allowed = torch.ones(config.vocab_size, dtype=torch.bool)
    allowed[list(config.never_predicted)] = False
    candidates = torch.nonzero(allowed).squeeze(1)
    draws = torch.randint(len(candidates), input_ids.shape, generator=generator)
    corrupted = torch.where(to_random, candidates[draws], input_ids)
    return corrupted.masked_fill(to_mask, config.mask_id)


def mask_tokens(
    input_ids: torch.Tensor,
    config: MaskingConfig,
    *,
    generator: torch.Generator | None = None,
    token_weights: torch.Tensor | None = None,
    word_ids: torch.Tensor | Sequence[Sequence[int | None]] | None = None,
) -> MaskedBatch:
    """Choose positions to predict and corrupt them 80/10/10 (mask / random / keep).

    token_weights: (V,) scores from `frequency_weights` → XLM's frequency-smoothed sampling of exactly
      ceil(p·n) positions; None → Bernoulli(p) per unit (or exact uniform with config.exact_count).
    word_ids: (B, T) long, the word each token belongs to within its row, -1 (or None in nested lists,
      as tokenizers return them) for none (specials, pads).
      Under it a word is chosen, and corrupted, as one unit (the tokenizers' word_ids, so it works for
      SentencePiece and BPE alike rather than by BERT's "##" prefix).
    Pads, config.special_ids and the mask id are never predicted. XLM also never predicts the first
    row (pred_mask[0] = 0); there it is a framing `</s>`, which special_ids covers.
    The draws are made on the CPU (where a data pipeline's generator lives); outputs return to
    input_ids' device.
    """
    device, input_ids = input_ids.device, input_ids.cpu()
    if isinstance(word_ids, torch.Tensor):
        word_ids = word_ids.cpu()
    elif word_ids is not None:
        word_ids = torch.tensor([[-1 if w is None else w for w in row] for row in word_ids], dtype=torch.long)
    forbidden = torch.tensor(config.never_predicted)
    eligible = ~torch.isin(input_ids, forbidden)
    unit, n_units = _units(eligible, word_ids)
    weights = _unit_weights(input_ids, unit, n_units, token_weights)
    chosen = _choose_units(n_units, config, weights, generator)
    in_unit = unit >= 0
    pred_mask = torch.zeros_like(eligible)
    pred_mask[in_unit] = chosen[unit[in_unit]]

    corrupted = _corrupt(input_ids, pred_mask, unit, n_units, config, generator)
    labels = input_ids.masked_fill(~pred_mask, IGNORE_INDEX)
    return MaskedBatch(corrupted.to(device), labels.to(device), pred_mask.to(device))


def _as_list(ids) -> list[int]:
    return [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]


def _per_example(value, n: int, name: str) -> list[int]:
    """A language id given once for the batch, or once per example."""
    if isinstance(value, int):
        return [value] * n
    values = _as_list(value)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} pairs")
    return values


def tlm_batch(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    framing: Framing,
    lang1_id: int | Sequence[int],
    lang2_id: int | Sequence[int],
    pad_id: int,
    reset_positions: bool = True,
    max_len: int | None = None,
) -> dict[str, torch.Tensor]:
    """Frame parallel pairs (unframed ids) into one TLM batch, right-padded with pad_id.

    Each row is `framing.frame(s1, s2)`: with the family's TLM framing (family.tlm_framing) that is XLM's
    `</s> s1 </s> </s> s2 </s>` (xlm/utils.py concat_batches, formats.md §5) or XLM-R's
    `<s> s1 </s></s> s2 </s>`; a framing with gap 0 shares one `</s>` between the sides (XLM's XNLI
    `</s> A </s> B </s>`, which XLM pairs with reset_positions=False). Side 2 begins at the separator
    before its text: langs are lang1_id before it and lang2_id from it on (pads included, as XLM), and
    reset_positions restarts positions at 0 there (TLM); False keeps them continuous. max_len truncates
    each side's content before framing (XLM's max_len). Returns input_ids, attention_mask, langs,
    positions, all (B, T) long.
    """
    l1s, l2s = _per_example(lang1_id, len(pairs), "lang1_id"), _per_example(lang2_id, len(pairs), "lang2_id")
    cut = slice(None, max_len)
    rows = [(framing.frame(_as_list(a)[cut], _as_list(b)[cut]), len(_as_list(a)[cut])) for a, b in pairs]
    width = max((len(row) for row, _ in rows), default=0)
    out = {k: torch.zeros(len(rows), width, dtype=torch.long) for k in ("attention_mask", "langs")}
    out["input_ids"] = torch.full((len(rows), width), pad_id, dtype=torch.long)
    out["positions"] = torch.arange(width).repeat(len(rows), 1)
    for i, (row, len_a) in enumerate(rows):
        start = framing.second_start(len_a)
        out["input_ids"][i, : len(row)] = torch.tensor(row)
        out["attention_mask"][i, : len(row)] = 1
        out["langs"][i] = l1s[i]
        out["langs"][i, start:] = l2s[i]
        if reset_positions:
            out["positions"][i, start:] -= start
    return out


def clm_batch(
    input_ids: torch.Tensor,
    *,
    pad_id: int,
    lang_id: int | torch.Tensor | None = None,
    context_size: int = 0,
) -> dict[str, torch.Tensor]:
    """Inputs and next-token labels for CLM (the model applies the causal mask).

    labels[:, t] = input_ids[:, t + 1]; the last position, positions whose target is a pad, and the first
    `context_size` positions (XLM's CLM step does not predict them) get IGNORE_INDEX, so the loss is
    losses.masked_lm_loss(hidden, labels, ...) over the same labels. lang_id: one id for the batch, a (B,) tensor
    of per-row ids, or None for models without language embeddings. Returns input_ids, attention_mask,
    labels, and langs when lang_id is given.
    """
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[:, :-1] = input_ids[:, 1:]
    labels[labels == pad_id] = IGNORE_INDEX
    labels[:, :context_size] = IGNORE_INDEX
    out = {"input_ids": input_ids, "attention_mask": (input_ids != pad_id).long(), "labels": labels}
    if lang_id is not None:
        lang = torch.as_tensor(lang_id, dtype=torch.long)
        out["langs"] = (lang if lang.dim() == 0 else lang[:, None]).expand_as(input_ids).clone()
    return out


def language_sampling_probs(counts: Mapping[str, int], alpha: float) -> dict[str, float]:
    """p_l ∝ n_l ** alpha, normalised (alpha 0.3 for XLM-R, 0.7 for XLM; 0 is uniform, 1 proportional).

    XLM writes it p_l ∝ (n_l / Σn) ** lg_sampling_factor (formats.md §5); the constant Σn cancels on
    normalising, so the two agree. XLM's "-1 means uniform" sentinel is alpha=0 here. Languages with
    no data get probability 0.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0 (0 is uniform), got {alpha}")
    if not counts or all(n <= 0 for n in counts.values()):
        raise ValueError(f"no language has data: {dict(counts)}")
    scores = {lang: float(n) ** alpha if n > 0 else 0.0 for lang, n in counts.items()}
    total = sum(scores.values())
    return {lang: s / total for lang, s in scores.items()}


class LanguageSampler:
    """Draws the language of each step from language_sampling_probs, as a pure function of (seed, step).

    Because the draw at a step depends only on the seed and the step, a resumed run continues the
    same sequence with nothing extra in its checkpoint.
    """

    def __init__(self, counts: Mapping[str, int], alpha: float, *, seed: int = 0):
        self.probs = language_sampling_probs(counts, alpha)
        self.langs = sorted(self.probs)  # a fixed order, whatever order the caller's dict had
        self._p = np.array([self.probs[lang] for lang in self.langs])
        self.seed = seed

    def sample(self, step: int, n: int = 1) -> list[str]:
        """The n languages drawn at `step` (independent draws with replacement)."""
        rng = np.random.default_rng((self.seed, step))
        return [self.langs[i] for i in rng.choice(len(self.langs), size=n, p=self._p)]
