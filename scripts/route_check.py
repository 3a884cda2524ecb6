"""Every route of xlmlib/routes.py against the padded route on one device: outputs and gradients.

For each attention route (grid, per_row, varlen, jagged), each q/k/v projection (fused against separate)
and, on the CPU, each linear backend (onednn against torch, under no_grad), a small XLM-R-shaped model and an
XLM causal one run a padded batch in fp32 and under bf16 autocast (where the route takes the call): real-token
outputs and every parameter gradient must match the padded route's (fp32: 1e-4 absolute on outputs, 1e-3
relative to the largest gradient; bf16: 5e-2 and 5e-2). A route that cannot take a case (routes.unable says
why) is listed as such. At the end it prints the lines to paste into routes.VERIFIED for this device type,
with the device's name, the torch version and the date, for the routes that passed every case they ran.

    python scripts/route_check.py [--device cuda] [--out route-check.md]

scripts/gpu_check.sh runs it first in a GPU session; `SMOKE=1 bash scripts/gpu_check.sh` runs it on the CPU.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xlmlib
from xlmlib import routes as R

TOLERANCES = {torch.float32: (1e-4, 1e-3), torch.bfloat16: (5e-2, 5e-2)}


@dataclass(frozen=True)
class Model:
    name: str
    config: xlmlib.ModelConfig


def models() -> list[Model]:
    xlmr = xlmlib.ModelConfig.from_preset("xlm-roberta-base").replace(
        n_layers=2, dim=64, n_heads=4, ffn_dim=128, vocab_size=500, mask_index=499, dropout=0.0, attention_dropout=0.0)
    xlm = xlmlib.ModelConfig.from_preset("xlm-mlm-enfr-1024").replace(
        n_layers=2, dim=64, n_heads=4, ffn_dim=128, vocab_size=500, mask_index=5, dropout=0.0, attention_dropout=0.0,
        causal=True)
    return [Model("xlm-r", xlmr), Model("xlm causal", xlm)]


def batch(cfg, device):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(6, cfg.vocab_size - 1, (4, 24), generator=g)
    mask = torch.ones_like(ids)
    for row, n in ((1, 7), (2, 20), (3, 1)):
        mask[row, ids.shape[1] - n:] = 0
    ids = ids.masked_fill(mask == 0, cfg.pad_index)
    langs = {"langs": 1} if cfg.has_lang_emb else {}
    return ids.to(device), mask, langs  # the mask stays on the CPU: the layout is read there, as in training


def run(model_spec: Model, settings: dict, dtype, device, grad: bool):
    torch.manual_seed(1)
    model = xlmlib.TokenClassifier(model_spec.config, num_labels=3)
    model.reset_parameters()
    model.to(device).train(grad)
    for kind, route in settings.items():
        setattr(model, kind, route)
    ids, mask, langs = batch(model_spec.config, device)
    labels = torch.where(mask.bool(), ids.cpu() % 3, -100).to(device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.set_grad_enabled(grad), autocast:
        out = model(ids, attention_mask=mask, labels=labels, output_hidden_states=True, **langs)
    real = mask.bool().to(device)
    outputs = [h[real].float() for h in out.hidden_states] + [out.logits[real].float()]
    if not grad:
        return outputs, {}
    out.loss.backward()
    return outputs, {n: p.grad.float() for n, p in model.named_parameters() if p.grad is not None}


def compare(candidate, reference, dtype) -> str | None:
    """None when candidate matches reference within the dtype's tolerances, else what differs."""
    atol, grad_rtol = TOLERANCES[dtype]
    (outs, grads), (ref_outs, ref_grads) = candidate, reference
    for i, (a, b) in enumerate(zip(outs, ref_outs)):
        diff = (a - b).abs().max().item()
        if diff > atol:
            return f"output {i}: max |diff| {diff:.3g} > {atol}"
    for name, g in ref_grads.items():
        diff = (grads[name] - g).abs().max().item()
        if diff > grad_rtol * g.abs().max().item() + 1e-6:
            return f"gradient of {name}: max |diff| {diff:.3g}"
    return None


def cases(device):
    """(kind, route, baseline settings, grad) for every route of the device, the padded route as reference."""
    base = {"attention": "padded", "qkv": "separate", "linear": "torch"}
    for route in R.ROUTES["attention"][1:]:
        yield "attention", route, base, True
    yield "qkv", "fused", base, True
    if device.type == "cpu":
        yield "linear", "onednn", base, False
    yield "attention", "padded", base, True  # the reference itself: it runs, against itself


def check(device) -> dict[str, list[str]]:
    """route -> problems (empty: verified); a route no case could run is absent."""
    results: dict[str, list[str]] = {}
    for kind, route, base, grad in cases(device):
        for spec in models():
            for dtype in (torch.float32, torch.bfloat16):
                if not grad and dtype != torch.float32:
                    continue
                name = f"{kind}={route} {spec.name} {str(dtype).split('.')[-1]}"
                try:
                    candidate = run(spec, {**base, kind: route}, dtype, device, grad)
                except R.RouteError as err:
                    print(f"  -      {name}: cannot run ({str(err).split(': ', 1)[1].split(';')[0]})")
                    continue
                problem = compare(candidate, run(spec, base, dtype, device, grad), dtype)
                results.setdefault(route, []).extend([f"{name}: {problem}"] if problem else [])
                print(f"  {'ok  ' if problem is None else 'FAIL'}   {name}" + (f": {problem}" if problem else ""))
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=None, help="also write the lines to paste to this file")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    stamp = f"{where}, torch {torch.__version__}, {datetime.date.today().isoformat()}: scripts/gpu_check.sh"
    print(f"route check on {where} (torch {torch.__version__})")
    results = check(device)
    passed = [route for route, problems in results.items() if not problems]
    if results:  # the baselines ran in every case, as the reference each route was compared with
        passed += ["separate", "torch"]
    lines = [f'    "{device.type}": {{'] + [f'        "{route}": "{stamp}",' for route in passed] + ["    },"]
    print(f"\nroutes.VERIFIED entries for {device.type} (every case these routes ran matched the padded route):")
    print("\n".join(lines))
    failed = sorted(route for route, problems in results.items() if problems)
    if failed:
        print(f"\nFAILED: {', '.join(failed)}: keep them out of VERIFIED")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
