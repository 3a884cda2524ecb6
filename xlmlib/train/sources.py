"""Batch sources for pretraining: the global batch of step k as a pure function of (seed, k).

Each source's batch(step) returns model inputs plus "labels" (-100 where nothing is predicted), ready
for train/step.MaskedOnlyLMLoss. Random draws (masking, language choice) use generators seeded by
(seed, step), never the global RNG, so a resumed run replays the same batches (data.py gives the same
guarantee for the order of windows and pairs).
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import ModelConfig
from ..family import family_of
from ..objectives import LanguageSampler, MaskingConfig, clm_batch, frequency_weights, mask_tokens, tlm_batch
from .data import MemmapCorpus, ParallelCorpus, TokenWindows


def masking_for(cfg: ModelConfig, mlm_probability: float = 0.15, *, exact_count: bool = False) -> MaskingConfig:
    """MLM masking with the model's special ids: <s>, </s> and <pad> are never predicted."""
    specials = (cfg.bos_index, cfg.eos_index, cfg.pad_index)
    return MaskingConfig(vocab_size=cfg.vocab_size, mask_id=cfg.mask_index, pad_id=cfg.pad_index,
                         special_ids=specials, mlm_probability=mlm_probability, exact_count=exact_count)


def step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    """A torch generator seeded by (seed, step, salt) through numpy's SeedSequence (no collisions between
    nearby seeds and steps)."""
    state = np.random.SeedSequence([seed, step, salt]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


def lang_ids(cfg: ModelConfig, langs) -> dict[str, int]:
    """Language code -> language embedding row: the model's own table when it names its languages,
    else the order of `langs`. Models without language embeddings get none (an empty dict)."""
    if not cfg.has_lang_emb:
        return {}
    table = cfg.lang2id or {code: i for i, code in enumerate(langs)}
    unknown = [code for code in langs if code not in table or table[code] >= cfg.n_langs]
    if unknown:
        raise ValueError(f"languages {unknown} have no language embedding in this model "
                         f"({cfg.n_langs} languages: {', '.join(cfg.langs) or 'unnamed'})")
    return {code: table[code] for code in langs}


def _with_langs(batch: dict, ids: dict[str, int], lang: str) -> dict:
    if ids:
        batch["langs"] = torch.full_like(batch["input_ids"], ids[lang])
    return batch


class StreamSource:
    """MLM or CLM over fixed-length token windows, one corpus per language; the language of each step is
    drawn with p ∝ n_l^lang_alpha (XLM samples one language per batch)."""

    def __init__(self, corpora: dict[str, MemmapCorpus], cfg: ModelConfig, *, objective: str, batch_size: int,
                 seq_len: int, seed: int = 0, mlm_probability: float = 0.15, sample_alpha: float = 0.0,
                 lang_alpha: float = 0.7, word_ids=None, repeat: bool = False):
        if objective not in ("mlm", "clm"):
            raise ValueError(f"StreamSource does MLM or CLM, not {objective!r}")
        self.cfg, self.objective, self.seed = cfg, objective, seed
        self.word_ids = word_ids  # ids (B T) -> word index per token: whole-word masking when given
        self.windows = {lang: TokenWindows(c, seq_len=seq_len, eos_id=cfg.eos_index, batch_size=batch_size, seed=seed,
                                           repeat=repeat)
                        for lang, c in corpora.items()}
        self.sampler = LanguageSampler({lang: int(c.header["n_tokens"]) for lang, c in corpora.items()},
                                       lang_alpha, seed=seed)
        self.ids = lang_ids(cfg, list(corpora))
        self.masking = masking_for(cfg, mlm_probability)
        self.weights = None
        if sample_alpha > 0:  # XLM's frequency-smoothed positions, counts over all training corpora
            counts = sum(np.bincount(c.ids, minlength=cfg.vocab_size) for c in corpora.values())
            self.weights = frequency_weights(counts, sample_alpha, pad_id=cfg.pad_index,
                                             special_ids=self.masking.special_ids)

    @property
    def batches_per_epoch(self) -> int:
        return min(w.batches_per_epoch for w in self.windows.values())

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        lang = self.sampler.sample(step)[0] if len(self.windows) > 1 else next(iter(self.windows))
        x = self.windows[lang].batch(step)
        if self.objective == "clm":
            out = clm_batch(x, pad_id=self.cfg.pad_index)
            out.pop("langs", None)
            return _with_langs(out, self.ids, lang)
        words = self.word_ids(x) if self.word_ids is not None else None
        m = mask_tokens(x, self.masking, generator=step_generator(self.seed, step), token_weights=self.weights,
                        word_ids=words)
        out = {"input_ids": m.input_ids, "attention_mask": torch.ones_like(x), "labels": m.labels}
        return _with_langs(out, self.ids, lang)


class TLMSource:
    """TLM: parallel pairs framed as one sequence by the family's TLM framing (family.tlm_framing: XLM
    `</s> s1 </s> </s> s2 </s>`, XLM-R `<s> s1 </s></s> s2 </s>`), both sides masked. Positions restart
    on side 2 (reset_positions) and are shifted by the model's position_offset, since the model only
    adds it to positions it makes itself.
    """

    def __init__(self, corpus: ParallelCorpus, cfg: ModelConfig, *, langs, batch_size: int, seq_len: int,
                 seed: int = 0, mlm_probability: float = 0.15, reset_positions: bool = True, word_ids=None):
        if len(langs) != 2:
            raise ValueError(f"TLM needs two languages (source, target), got {list(langs)}")
        self.corpus, self.cfg, self.langs, self.seed = corpus, cfg, tuple(langs), seed
        self.batch_size, self.reset_positions = batch_size, reset_positions
        self.word_ids = word_ids  # as in StreamSource
        self.framing = family_of(cfg).tlm_framing(cfg)
        # each side's content, so that the framed pair fits seq_len
        self.max_len = (seq_len - self.framing.n_special(pair=True)) // 2
        self.ids = lang_ids(cfg, self.langs)
        self.masking = masking_for(cfg, mlm_probability)

    @property
    def batches_per_epoch(self) -> int:
        return len(self.corpus) // self.batch_size

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        pairs = self.corpus.batch(step, self.batch_size, seed=self.seed)
        cfg = self.cfg
        ids = [self.ids.get(code, 0) for code in self.langs]
        out = tlm_batch(pairs, framing=self.framing, lang1_id=ids[0], lang2_id=ids[1], pad_id=cfg.pad_index,
                        reset_positions=self.reset_positions, max_len=self.max_len)
        words = self.word_ids(out["input_ids"]) if self.word_ids is not None else None
        m = mask_tokens(out["input_ids"], self.masking, generator=step_generator(self.seed, step), word_ids=words)
        out["input_ids"], out["labels"] = m.input_ids, m.labels
        out["positions"] = out["positions"] + cfg.position_offset
        if not self.ids:
            out.pop("langs")
        return out


class SampledSource:
    """One of several sources per step, drawn with p ∝ size^alpha (XLM's smoothing, applied to e.g. the
    language pairs of TLM); a pure function of (seed, step) like every source."""

    def __init__(self, sources: dict, sizes: dict[str, int], *, alpha: float, seed: int = 0):
        self.sources = dict(sources)
        self.sampler = LanguageSampler(sizes, alpha, seed=seed)

    @property
    def batches_per_epoch(self) -> int:
        return min(s.batches_per_epoch for s in self.sources.values())

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        return self.sources[self.sampler.sample(step)[0]].batch(step)


class AlternatingSource:
    """Step k takes its batch from sources[k % n]: XLM's trainer alternates its MLM and TLM steps."""

    def __init__(self, sources: list):
        self.sources = list(sources)

    @property
    def batches_per_epoch(self) -> int:
        return min(s.batches_per_epoch for s in self.sources)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        return self.sources[step % len(self.sources)].batch(step)
