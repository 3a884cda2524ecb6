"""MLM training-step time of an xlm-roberta-base-sized model: masked-only LM head vs full projection.

One randomly initialised model (ModelConfig.from_preset("xlm-roberta-base")), one AdamW, batch 8 x 128
with exactly 15% of the tokens predicted. Each step is forward + backward + AdamW update. The two heads
alternate step by step in the same run (so drift in machine load hits both alike); we report medians.

    python scripts/bench_mlm_step.py [--steps 5] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from xlmlib import MaskedLM, ModelConfig
from xlmlib.losses import count_targets, full_lm_loss
from xlmlib.objectives import mask_tokens
from xlmlib.train.config import TrainConfig
from xlmlib.train.sources import masking_for
from xlmlib.train.step import MaskedOnlyLMLoss
from xlmlib.train.trainer import build_optimizer


def _batch(cfg: ModelConfig, batch: int, seq: int, device) -> dict:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, cfg.vocab_size - 1, (batch, seq), generator=g)
    ids[:, 0], ids[:, -1] = cfg.bos_index, cfg.eos_index
    masking = masking_for(cfg, 0.15, exact_count=True)
    m = mask_tokens(ids, masking, generator=g)
    return {"input_ids": m.input_ids.to(device), "labels": m.labels.to(device)}


def full_projection(model: MaskedLM, batch: dict) -> tuple[torch.Tensor, None]:
    """The same summed loss through every row's logits (B x T x V), for the comparison."""
    h, _ = model.encode(batch["input_ids"])
    return full_lm_loss(model.lm_head(h, model.embed.tokens), batch["labels"], reduction="sum"), None


def _step(module, optimizer, batch, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    loss, _ = module(batch)
    n = count_targets(batch["labels"])
    (loss / n).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5, help="timed steps per head (after one warm-up step each)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = ModelConfig.from_preset("xlm-roberta-base").replace(dropout=0.0, attention_dropout=0.0)
    model = MaskedLM(cfg)
    model.reset_parameters()
    model.to(device).train()
    heads = {"masked-only": MaskedOnlyLMLoss(model), "full projection": lambda b: full_projection(model, b)}
    optimizer = build_optimizer(model, TrainConfig(lr=1e-5))
    batch = _batch(cfg, args.batch, args.seq, device)
    n_pred = int(count_targets(batch["labels"]))
    times = {name: [] for name in heads}
    for rep in range(args.steps + 1):
        for name, module in heads.items():
            elapsed = _step(module, optimizer, batch, device)
            if rep:  # the first round warms up allocators and kernels
                times[name].append(elapsed)
    params = sum(p.numel() for p in model.parameters())
    print(f"xlm-roberta-base-sized MaskedLM, {params / 1e6:.0f}M parameters, batch {args.batch}x{args.seq}, "
          f"{n_pred} predicted positions, device {device}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    med = {name: 1000 * statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"  {name:<16} median {med[name]:8.1f} ms/step  (steps: {', '.join(f'{1000 * x:.0f}' for x in t)})")
    print(f"  full / masked-only: {med['full projection'] / med['masked-only']:.2f}x")


if __name__ == "__main__":
    main()
