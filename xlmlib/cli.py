"""`xlmlib` command line. Each verb is a (configure, run) pair in VERBS; errors print one line and exit 1
(the traceback only with --debug)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from . import cli_mt
from .hub import DEFAULT_MODEL

logger = logging.getLogger("xlmlib.cli")


def _configure_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="model folder, checkpoint file or hub name")


def _run_info(args) -> int:
    from .checkpoint.load import read_checkpoint

    ckpt = read_checkpoint(args.src)
    cfg = ckpt.config
    n_params = sum(t.numel() for t in ckpt.state.values())
    print(f"source:      {ckpt.source}")
    print(f"format:      {ckpt.format}")
    print(f"layers:      {cfg.n_layers} x {cfg.dim} (heads {cfg.n_heads}, ffn {cfg.ffn_dim}, "
          f"{'pre' if cfg.pre_norm else 'post'}-LayerNorm)")
    print(f"vocabulary:  {cfg.vocab_size}{_trimmed_from(ckpt.source)}")
    print(f"parameters:  {n_params:,}")
    weights = Path(ckpt.source) / "model.safetensors"
    if weights.is_file():
        print(f"file size:   {weights.stat().st_size:,} bytes ({weights.name})")
    langs = ", ".join(cfg.langs) if cfg.langs else "-"
    print(f"languages:   {langs} ({'language embeddings' if cfg.has_lang_emb else 'no language embeddings'})")
    return 0


def _trimmed_from(source: str) -> str:
    """What a trimmed folder's trim.json says of the sizes before trimming, for info."""
    import json

    from .trim import REPORT_FILE

    record = Path(source) / REPORT_FILE
    if not record.is_file():
        return ""
    r = json.loads(record.read_text(encoding="utf-8"))
    before = f", {r['params_before']:,} parameters" if r.get("params_before") else ""
    return f" (trimmed from {r['vocab_before']:,}{before}; {100 * r['unk_rate']:.1f}% of the corpus became <unk>)"


def _model_args(p: argparse.ArgumentParser, *, default: str | None = None) -> None:
    if default:
        p.add_argument("--model", default=default, help=f"model folder, checkpoint file or hub name (default: "
                       f"{default}, the small model shipped with xlmlib)")
    else:
        p.add_argument("--model", required=True, help="model folder, checkpoint file or hub name")
    p.add_argument("--lang", default=None, help="language code (models with language embeddings)")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto (CUDA when present)")


def _configure_fill_mask(p: argparse.ArgumentParser) -> None:
    _model_args(p, default=DEFAULT_MODEL)
    p.add_argument("text", help="text with <mask> (XLM-R) or <special1> (XLM)")
    p.add_argument("--top-k", type=int, default=5)


def _run_fill_mask(args) -> int:
    from .api import fill_mask, load

    model, tok = load(args.model, task="masked-lm", device=args.device)
    _need_tokenizer(tok, args.model)
    for k, candidates in enumerate(fill_mask(model, tok, args.text, top_k=args.top_k, lang=args.lang)):
        print(f"mask {k + 1}:")
        for c in candidates:
            print(f"  {c['score']:.4f}  {c['token']!r:<16} {c['text']}")
    return 0


def _configure_embed(p: argparse.ArgumentParser) -> None:
    _model_args(p, default=DEFAULT_MODEL)
    p.add_argument("--input", required=True, help="text file, one sentence per line")
    p.add_argument("--output", required=True, help="where to write the vectors (.npy)")
    p.add_argument("--pooling", choices=("mean", "cls"), default="mean")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-normalize", action="store_true", help="keep raw vectors (default: unit length)")


def _run_embed(args) -> int:
    import numpy as np

    from .api import embed, load
    from .atomic import atomic_path

    model, tok = load(args.model, task="encoder", device=args.device)
    _need_tokenizer(tok, args.model)
    with open(args.input, encoding="utf-8") as fh:
        lines = [line.rstrip("\n") for line in fh]
    vectors = embed(model, tok, lines, pooling=args.pooling, normalize=not args.no_normalize,
                    batch_size=args.batch_size, lang=args.lang).numpy()
    with atomic_path(args.output) as tmp, open(tmp, "wb") as fh:
        np.save(fh, vectors)
    print(f"wrote {vectors.shape[0]} vectors of size {vectors.shape[1]} to {args.output}")
    return 0


def _configure_generate(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("prompt")
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--num-beams", type=int, default=1)
    p.add_argument("--seed", type=int, default=None)


def _run_generate(args) -> int:
    from .api import generate, load

    model, tok = load(args.model, task="causal-lm", device=args.device)
    _need_tokenizer(tok, args.model)
    text = generate(model, tok, args.prompt, lang=args.lang, max_new_tokens=args.max_new_tokens,
                    do_sample=args.sample, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                    num_beams=args.num_beams, seed=args.seed)[0]
    print(args.prompt + (" " if text and not text.startswith(" ") else "") + text)
    return 0


def _need_tokenizer(tok, src) -> None:
    if tok is None:
        raise FileNotFoundError(f"no tokenizer files beside {src}")


def _configure_convert(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="model folder, fairseq model.pt, XLM .pth, .safetensors file or hub name")
    p.add_argument("dst", help="new folder to write (must not exist yet)")
    p.add_argument("--to", choices=("xlmlib", "hf"), default="xlmlib", help="layout of the written folder")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                   help="dtype of the written weights")


def _run_convert(args) -> int:
    from .checkpoint.convert import convert

    diff = convert(args.src, args.dst, to=args.to, dtype=args.dtype)
    print(f"wrote {args.dst} ({args.to}, {args.dtype}); max |difference| of outputs on a probe batch: {diff:.3g}")
    return 0


def _configure_trim(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="model folder, checkpoint or hub name (or a tokenizer alone, for a new model)")
    p.add_argument("dst", help="new folder to write (must not exist yet)")
    p.add_argument("--corpus", nargs="+", required=True, help="text files whose pieces to keep (one sentence a line)")
    p.add_argument("--max-pieces", type=int, default=None, help="keep only the N most frequent pieces (default: all seen)")
    p.add_argument("--keep", nargs="+", default=(), help="pieces to keep even when the corpus lacks them")
    p.add_argument("--lang", default=None, help="language of the corpus (XLM's Moses rules; XLM-R ignores it)")


def _run_trim(args) -> int:
    from .trim import trim_vocab

    r = trim_vocab(args.src, args.dst, args.corpus, args.max_pieces, args.keep, lang=args.lang)
    sizes = f"; parameters {r.params_before:,} -> {r.params_after:,}, {r.file_bytes:,} bytes" if r.params_before else ""
    print(f"wrote {args.dst}: vocabulary {r.vocab_before:,} -> {r.vocab_after:,}{sizes}; "
          f"{100 * r.unk_rate:.2f}% of {r.corpus_tokens:,} corpus tokens become <unk>")
    return 0


def _files(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def _field_meta(cls, name: str) -> dict:
    """A field's metadata (help, choices, ...), from the first class of the MRO that gives it (a subclass
    that only changes a default keeps its parent's help)."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and f.metadata:
            return dict(f.metadata)
    return {}


def _shown(value) -> str:
    if value in ((), ""):
        return "none"
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _add_config_args(p: argparse.ArgumentParser, cls) -> None:
    """One flag per field of the config dataclass `cls`, with the field's help and default: a new field is a
    flag the moment it exists. Every flag defaults to None ("not given") so a --config recipe value stands."""
    p.add_argument("--config", help="a configs/tasks/*.toml recipe; command-line options override it")
    for f in dataclasses.fields(cls):
        meta = _field_meta(cls, f.name)
        flag = "--" + f.name.replace("_", "-")
        text = f"{meta.get('help') or f.name} (default: {_shown(f.default)})".replace("%", "%%")
        choices = meta.get("choices")
        choices = choices() if callable(choices) else choices
        if isinstance(f.default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif isinstance(f.default, tuple):
            metavar = meta.get("metavar")
            p.add_argument(flag, nargs=len(metavar) if metavar else "+", metavar=metavar, default=None, help=text,
                           type=float if "float" in str(f.type) else str)
        else:
            p.add_argument(flag, type=type(f.default), choices=choices, default=None, help=text)


def _config(args, cls):
    """The config of a run: the --config recipe (if any) with the flags given on top."""
    from .train.config import config_from_dict, load_recipe

    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if v is not None and k in names}
    for key, value in given.items():
        if _field_meta(cls, key).get("comma"):
            given[key] = [part for v in value for part in _files(v)]
    if args.config:
        cfg = load_recipe(args.config, given)
        if not isinstance(cfg, cls):
            raise ValueError(f"{args.config} is not a recipe for this command")
        return cfg
    return config_from_dict(cls, given)


def _device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: this process's GPU, else cpu)")


def _configure_pretrain(p: argparse.ArgumentParser) -> None:
    from .train.config import TrainConfig

    _add_config_args(p, TrainConfig)
    _device_arg(p)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")


def _run_pretrain(args) -> int:
    from .train.config import TrainConfig
    from .train.pretrain import run_pretrain

    records = run_pretrain(_config(args, TrainConfig), resume=args.resume, device=args.device)
    if records:
        last = records[-1]
        print(f"step {last['step']}: loss {last.get('loss', float('nan')):.4f}")
    return 0


def _configure_preprocess(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokenizer", required=True, help="tokenizer source, or a word-list .txt")
    p.add_argument("--out", required=True, help="folder for the binarized corpora (NAME.ids.bin/.offsets.bin/.json)")
    p.add_argument("--langs", help="comma-separated language codes, one per input file, e.g. en,fr (XLM's "
                   "tokenization rules depend on the language; default: the tokenizer's default language)")
    p.add_argument("inputs", nargs="+", help="text files, one sentence per line")


def _run_preprocess(args) -> int:
    import functools
    from pathlib import Path

    from .train.data import binarize
    from .train.text import load_text_encoder

    langs = _files(args.langs) if args.langs else [None] * len(args.inputs)
    if len(langs) != len(args.inputs):
        raise ValueError(f"{len(args.inputs)} input files but {len(langs)} --langs; give one language per file")
    encoder = load_text_encoder(args.tokenizer)
    for path, lang in zip(args.inputs, langs):
        prefix = Path(args.out) / Path(path).stem
        header = binarize(path, functools.partial(encoder.encode, lang=lang), prefix, vocab_size=encoder.vocab_size)
        print(f"{prefix}: {header['n_sentences']} sentences, {header['n_tokens']} tokens")
    return 0


def _configure_finetune(p: argparse.ArgumentParser) -> None:
    from .train.config import FinetuneConfig

    _add_config_args(p, FinetuneConfig)
    _device_arg(p)


def _run_finetune(args) -> int:
    from .train.config import FinetuneConfig
    from .train.finetune import accuracy_table, run_finetune

    result = run_finetune(_config(args, FinetuneConfig), device=args.device)
    best = result["best"]
    print(f"best dev accuracy {100 * best['accuracy']:.2f}% at step {best['step']}")
    for path, res in result["test"].items():
        print(f"test {path}:")
        print(accuracy_table(res))
    return 0


# verb -> (help with an example, configure(parser), run(args) -> exit code)
VERBS = {
    "info": ("show a checkpoint's architecture, size, languages and format\n  example: xlmlib info ./xlmr-base",
             _configure_info, _run_info),
    "fill-mask": (("rank candidates for every mask in a text\n"
                  "  example: xlmlib fill-mask --model ./xlmr-base \"Paris is the <mask> of France.\""),
                  _configure_fill_mask, _run_fill_mask),
    "embed": (("write one sentence vector per input line to a .npy file\n"
              "  example: xlmlib embed --model ./xlmr-base --input sents.txt --output vectors.npy"),
              _configure_embed, _run_embed),
    "generate": (("continue a prompt with a causal LM (KV cache; greedy, sampling or beam search)\n"
                 "  example: xlmlib generate --model ./xlm-clm-enfr-1024 --lang en \"The weather is\""),
                 _configure_generate, _run_generate),
    "convert": (("convert a checkpoint (fairseq, original XLM, HF, xlmlib) to safetensors, then verify it\n"
                 "  example: xlmlib convert xlmr.large/model.pt ./xlmr-large --to hf --dtype bfloat16"),
                _configure_convert, _run_convert),
    "trim-vocab": (("keep only the vocabulary a corpus uses (token table, tied LM projection and bias sliced)\n"
                    "  example: xlmlib trim-vocab ./xlmr-base ./xlmr-base-de --corpus de.txt --max-pieces 30000"),
                   _configure_trim, _run_trim),
    "preprocess": (("tokenize text files once into the binarized memory-mapped format\n"
                   "  example: xlmlib preprocess --tokenizer ./xlmr-base --out data/ en.txt fr.txt"),
                   _configure_preprocess, _run_preprocess),
    "pretrain": (("pretrain with MLM, CLM or TLM (runs under torchrun for DDP/FSDP)\n"
                 "  example: xlmlib pretrain --model ./tiny --objective mlm --train data/en.txt data/fr.txt "
                 "--langs en,fr --steps 1000 --batch-size 32 --seq-len 256 --lr 1e-4 --out runs/mlm "
                 "--tokenizer ./tiny"),
                 _configure_pretrain, _run_pretrain),
    "finetune": (("fine-tune a sequence or token classifier and report per-language accuracy\n"
                 "  example: xlmlib finetune --config configs/tasks/xnli.toml --model ./xlmr-base "
                 "--train train.tsv --dev dev.tsv --out runs/xnli"),
                 _configure_finetune, _run_finetune),
    "translate": (("translate lines with an XLM encoder-decoder (greedy or beam search, as the original)\n"
                   "  example: xlmlib translate --model ./mt-deen --src de --tgt en --beam 5 < in.de > out.en"),
                  cli_mt.configure_translate, cli_mt.run_translate),
    "train-mt": (("train translation: supervised (mt), denoising (ae), back-translation (bt); BLEU on --valid\n"
                  "  example: xlmlib train-mt --model ./xlmlib-mini --langs de,en --parallel train.de train.en "
                  "--mt-steps de-en --valid valid.de valid.en --steps 2000 --out runs/mt"),
                 cli_mt.configure_train_mt, cli_mt.run_train_mt),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xlmlib", description="XLM and XLM-R in plain PyTorch")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="verb", required=True)
    for name, (help_text, configure, run) in VERBS.items():
        p = sub.add_parser(name, help=help_text.splitlines()[0], description=help_text,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        configure(p)
        p.set_defaults(_run=run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args._run(args)
    except KeyboardInterrupt:
        print("xlmlib: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one clear line for users; --debug shows the traceback
        if args.debug:
            raise
        print(f"xlmlib {args.verb}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
