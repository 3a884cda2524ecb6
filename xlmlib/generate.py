"""Causal generation with a KV cache: greedy, sampling (temperature / top-k / top-p) and beam search.

Prompts are left-padded into one batch; positions count real tokens only, so a padded prompt continues
exactly like the same prompt alone, and `langs` is carried to every new token. This is next-token
prediction as in XLM's own TransformerModel.generate; transformers' XLMWithLMHeadModel.generate instead
appends config.mask_token_id and predicts at that position (modeling_xlm prepare_inputs_for_generation),
which GenerationConfig(append_token_id=...) reproduces for users who need its outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .attention import KVCache


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 20
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_beams: int = 1
    length_penalty: float = 1.0
    eos_token_id: int | None = None
    pad_token_id: int = 1
    seed: int | None = None
    # transformers' XLMWithLMHeadModel.generate: append this id and predict at its position, the whole
    # prefix recomputed each step (modeling_xlm prepare_inputs_for_generation, config.mask_token_id).
    # None (the default) is next-token prediction, as XLM's own generate does.
    append_token_id: int | None = None

    def __post_init__(self):
        if self.max_new_tokens < 1 or self.num_beams < 1:
            raise ValueError("max_new_tokens and num_beams must be >= 1")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be > 0 and top_p in (0, 1]")
        if self.do_sample and self.num_beams > 1:
            raise ValueError("sampling with beam search is not supported: choose do_sample or num_beams > 1")


def _positions(mask: torch.Tensor, offset: int) -> torch.Tensor:
    return (mask.cumsum(1) - 1).clamp(min=0) + offset


class _Stepper:
    """Feeds tokens to the model one step at a time, keeping mask, positions and langs in step."""

    def __init__(self, model, mask, langs):
        self.model, self.cache, self.mask = model, KVCache(), mask
        self.offset = model.config.position_offset
        self.langs = langs
        self.pos = _positions(mask, self.offset)

    def start(self, ids):
        return self.model(ids, attention_mask=self.mask, positions=self.pos, langs=self.langs,
                          cache=self.cache).logits[:, -1].float()

    def step(self, tokens):
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        self.pos = self.pos[:, -1:] + 1
        langs = self.langs[:, -1:] if torch.is_tensor(self.langs) and self.langs.dim() == 2 else self.langs
        return self.model(tokens[:, None], attention_mask=self.mask, positions=self.pos, langs=langs,
                          cache=self.cache).logits[:, -1].float()

    def reorder(self, index):
        self.cache.reorder(index)
        self.mask, self.pos = self.mask[index], self.pos[index]
        if torch.is_tensor(self.langs) and self.langs.dim() >= 1:
            self.langs = self.langs[index]


class _AppendStepper:
    """Scores the next token at an appended probe token (append_token_id), recomputing the whole prefix;
    `langs` is one id for every token, as transformers' config.lang_id."""

    def __init__(self, model, mask, langs, probe_id: int):
        if torch.is_tensor(langs) and langs.dim() > 0:
            raise ValueError("append_token_id generation takes one language id (an int) for every token")
        self.model, self.ids, self.mask, self.langs, self.probe = model, None, mask, langs, probe_id

    def _logits(self):
        probe = F.pad(self.ids, (0, 1), value=self.probe)
        return self.model(probe, attention_mask=F.pad(self.mask, (0, 1), value=1), langs=self.langs).logits[:, -1].float()

    def start(self, ids):
        self.ids = ids
        return self._logits()

    def step(self, tokens):
        self.ids = torch.cat([self.ids, tokens[:, None]], dim=1)
        self.mask = F.pad(self.mask, (0, 1), value=1)
        return self._logits()

    def reorder(self, index):
        self.ids, self.mask = self.ids[index], self.mask[index]


def _stepper(model, mask, langs, cfg: GenerationConfig):
    if cfg.append_token_id is not None:
        return _AppendStepper(model, mask, langs, cfg.append_token_id)
    return _Stepper(model, mask, langs)


def _filter(logits, cfg: GenerationConfig):
    logits = logits / cfg.temperature
    if cfg.top_k:
        kth = torch.topk(logits, min(cfg.top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > cfg.top_p  # keep the smallest prefix reaching top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


@torch.no_grad()
def generate_ids(model, ids, attention_mask=None, langs=None, config: GenerationConfig | None = None):
    """Continue left-padded prompts ids (B T); returns B (T + new) ids, finished rows padded."""
    cfg = config or GenerationConfig()
    mask = attention_mask if attention_mask is not None else (ids != model.config.pad_index).long()
    if cfg.num_beams > 1:
        return _beam_search(model, ids, mask, langs, cfg)
    gen = torch.Generator(device=ids.device).manual_seed(cfg.seed) if cfg.seed is not None else None
    stepper = _stepper(model, mask, langs, cfg)
    logits, out = stepper.start(ids), ids
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    for step in range(cfg.max_new_tokens):
        if cfg.do_sample:
            probs = _filter(logits, cfg).softmax(-1)
            token = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        else:
            token = logits.argmax(-1)
        token = token.masked_fill(done, cfg.pad_token_id)
        out = torch.cat([out, token[:, None]], dim=1)
        if cfg.eos_token_id is not None:
            done |= token == cfg.eos_token_id
        if bool(done.all()) or step == cfg.max_new_tokens - 1:
            break
        logits = stepper.step(token)
    return out


def _beam_search(model, ids, mask, langs, cfg: GenerationConfig):
    B, K = ids.shape[0], cfg.num_beams
    rows = torch.arange(B, device=ids.device).repeat_interleave(K)
    langs = langs[rows] if torch.is_tensor(langs) and langs.dim() >= 1 else langs
    stepper = _stepper(model, mask[rows], langs, cfg)
    logp = stepper.start(ids[rows]).log_softmax(-1)
    scores = torch.full((B, K), float("-inf"), device=ids.device)
    scores[:, 0] = 0.0  # identical beams at the start: expand only the first
    seqs = ids[rows]
    finished: list[list[tuple[float, torch.Tensor]]] = [[] for _ in range(B)]
    for step in range(cfg.max_new_tokens):
        top, beam, token = expand_beams(scores.view(-1), logp, B, K)
        keep_beam, keep_tok, keep_score = _select(top, beam, token, seqs, finished, step, cfg, K)
        src = (torch.arange(B, device=ids.device)[:, None] * K + keep_beam).view(-1)
        seqs = torch.cat([seqs[src], keep_tok.view(-1, 1)], dim=1)
        scores = keep_score
        if all(len(f) >= K for f in finished) or step == cfg.max_new_tokens - 1:
            break
        stepper.reorder(src)
        logp = stepper.step(keep_tok.view(-1)).log_softmax(-1)
    return _best(finished, seqs, scores, cfg, B, K, ids.shape[1])


def expand_beams(scores: torch.Tensor, logp: torch.Tensor, B: int, K: int):
    """The 2K best continuations of each prompt over its K beams x V words: running score (B*K) plus
    next-word log-probs (B*K V), flattened per prompt, top 2K sorted; returns (sums, beam, word), each B 2K.
    Shared with the translator's beam search (mt/search.py), whose expansion is the same."""
    V = logp.shape[-1]
    top, idx = (scores[:, None] + logp).view(B, K * V).topk(2 * K, dim=1)
    return top, idx // V, idx % V


def _select(top, beam, token, seqs, finished, step, cfg, K):
    """For each prompt, move eos candidates to `finished` and keep the K best live continuations."""
    B = top.shape[0]
    keep = torch.zeros(B, K, dtype=torch.long, device=top.device), torch.zeros_like(beam[:, :K]), \
        torch.full((B, K), float("-inf"), device=top.device)
    for b in range(B):
        n = 0
        for score, bm, tok in zip(top[b].tolist(), beam[b].tolist(), token[b].tolist()):
            if cfg.eos_token_id is not None and tok == cfg.eos_token_id:
                if len(finished[b]) < K:
                    hyp = torch.cat([seqs[b * K + bm], seqs.new_tensor([tok])])
                    finished[b].append((score / (step + 1) ** cfg.length_penalty, hyp))
                continue
            if n < K:
                keep[0][b, n], keep[1][b, n], keep[2][b, n] = bm, tok, score
                n += 1
    return keep


def _best(finished, seqs, scores, cfg, B, K, prompt_len):
    length = seqs.shape[1] - prompt_len
    results = []
    for b in range(B):
        pool = list(finished[b]) if len(finished[b]) >= K else list(finished[b]) + [
            (scores[b, k].item() / length ** cfg.length_penalty, seqs[b * K + k]) for k in range(K)]
        results.append(max(pool, key=lambda item: item[0])[1])
    width = max(r.shape[0] for r in results)
    return torch.stack([F.pad(r, (0, width - r.shape[0]), value=cfg.pad_token_id) for r in results])
