"""Greedy and beam search of the original XLM translator (shared/reference/xlm-mt.md sections 3 and 6).

Both work on a *stepper*: `stepper.step(tokens)` feeds one token per row (N,) and returns the logits
(N V) of the next position; `stepper.reorder(index)` keeps the rows named by index (beam search). The
translator's stepper (mt/model.py) runs the decoder with a KV cache over an encoder output computed
once; tests drive these functions with scripted steppers to check the rules on constructed cases.

Results are batch-major (B L): `</s> y1 ... ym </s>` then pad, the transpose of the original's output.

Why this is not generate.py's beam search, though both expand beams the same way (expand_beams): XLM
keeps finished hypotheses in a k-slot pool that evicts its worst (BeamHypotheses), scores them by
sum / len(prefix) ** length_penalty with the prefix's leading </s> counted, stops a sentence by its
"done" test against (max_len - 1) ** length_penalty, and at the last slot offers every candidate as
finished; generate.py's CLM search keeps the first K finished and scores by new tokens only.
"""

from __future__ import annotations

import torch

from ..generate import expand_beams


def max_len_for(source_lengths: torch.Tensor, max_new_tokens: int | None) -> int:
    """Slots of the output rows, the start </s> included: int(1.5 * longest source (both </s> counted) + 10)
    over the batch, as the original's translate.py and evaluator; max_new_tokens=N gives N + 1."""
    if max_new_tokens is not None:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        return max_new_tokens + 1
    return int(1.5 * int(source_lengths.max()) + 10)


@torch.no_grad()
def greedy(stepper, batch_size: int, max_len: int, eos: int, pad: int, device=None) -> torch.Tensor:
    """XLM's `generate`: arg-max (topk 1) at every step; a row that produced </s> is finished and gets pad;
    rows still open when max_len slots are filled get their last slot overwritten by </s>."""
    out = torch.full((batch_size, max_len), pad, dtype=torch.long, device=device)
    out[:, 0] = eos
    unfinished = torch.ones(batch_size, dtype=torch.bool, device=device)
    cur = 1
    while cur < max_len:
        word = stepper.step(out[:, cur - 1]).topk(1, dim=-1).indices[:, 0]
        out[:, cur] = torch.where(unfinished, word, torch.full_like(word, pad))
        unfinished &= word != eos
        cur += 1
        if not bool(unfinished.any()):
            break
    if cur == max_len:
        out[:, -1] = torch.where(unfinished, torch.full_like(out[:, -1], eos), out[:, -1])
    return out[:, :cur]


class BeamHypotheses:
    """The k best finished hypotheses of one sentence (XLM's BeamHypotheses, rules of xlm-mt.md section 3)."""

    def __init__(self, k: int, max_len: int, length_penalty: float, early_stopping: bool):
        self.k, self.length_penalty, self.early_stopping = k, length_penalty, early_stopping
        self.max_len = max_len - 1  # the leading </s> is not generated
        self.hyps: list[tuple[float, torch.Tensor]] = []
        self.worst = 1e9

    def add(self, prefix: torch.Tensor, sum_logprobs: float) -> None:
        score = sum_logprobs / len(prefix) ** self.length_penalty
        if len(self.hyps) < self.k or score > self.worst:
            self.hyps.append((score, prefix))
            if len(self.hyps) > self.k:
                ranked = sorted((s, i) for i, (s, _) in enumerate(self.hyps))  # ties: lowest index goes
                del self.hyps[ranked[0][1]]
                self.worst = ranked[1][0]
            else:
                self.worst = min(score, self.worst)

    def is_done(self, best_sum: float) -> bool:
        if len(self.hyps) < self.k:
            return False
        if self.early_stopping:
            return True
        return self.worst >= best_sum / self.max_len ** self.length_penalty

    def best(self) -> torch.Tensor:
        return max(self.hyps, key=lambda item: item[0])[1]  # max keeps the first on ties


@torch.no_grad()
def beam_search(stepper, batch_size: int, k: int, max_len: int, eos: int, pad: int, *,
                length_penalty: float = 1.0, early_stopping: bool = False, device=None) -> torch.Tensor:
    """XLM's `generate_beam`. The stepper holds batch_size * k rows (row b * k + j is beam j of sentence b)."""
    B = batch_size
    seqs = torch.full((B * k, max_len), pad, dtype=torch.long, device=device)
    seqs[:, 0] = eos
    hyps = [BeamHypotheses(k, max_len, length_penalty, early_stopping) for _ in range(B)]
    scores = torch.zeros(B, k, device=device)
    scores[:, 1:] = -1e9  # identical beams at the start: only beam 0 expands
    scores = scores.view(-1)
    done = [False] * B
    cur = 1
    while cur < max_len:
        logp = stepper.step(seqs[:, cur - 1]).float().log_softmax(-1)
        top, beam, word = expand_beams(scores, logp, B, k)
        chosen = _choose(top, beam, word, seqs, hyps, done, cur, max_len, k, eos, pad)
        scores = top.new_tensor([c[0] for c in chosen])
        index = torch.tensor([c[2] for c in chosen], device=seqs.device)
        seqs = seqs[index]
        seqs[:, cur] = torch.tensor([c[1] for c in chosen], device=seqs.device)
        stepper.reorder(index)
        cur += 1
        if all(done):
            break
    return _assemble(hyps, eos, pad, device)


def _choose(top, beam, word, seqs, hyps, done, cur, max_len, k, eos, pad):
    """(score, word, source row) of the k beams that continue each sentence; finished prefixes go to hyps."""
    chosen = []
    for b in range(top.shape[0]):
        done[b] = done[b] or hyps[b].is_done(float(top[b].max()))
        if done[b]:
            chosen.extend([(0.0, pad, 0)] * k)  # the original's filler rows; never read again
            continue
        kept = []
        for value, bm, wd in zip(top[b].tolist(), beam[b].tolist(), word[b].tolist()):
            row = b * k + bm
            if wd == eos or cur + 1 == max_len:
                hyps[b].add(seqs[row, :cur].clone(), value)
            else:
                kept.append((value, wd, row))
            if len(kept) == k:
                break
        chosen.extend(kept or [(0.0, pad, 0)] * k)
    return chosen


def _assemble(hyps, eos, pad, device) -> torch.Tensor:
    """Best hypothesis of every sentence plus a closing </s>, right-padded (B L)."""
    best = [h.best() for h in hyps]
    out = torch.full((len(best), max(len(b) for b in best) + 1), pad, dtype=torch.long, device=device)
    for i, prefix in enumerate(best):
        out[i, :len(prefix)] = prefix
        out[i, len(prefix)] = eos
    return out
