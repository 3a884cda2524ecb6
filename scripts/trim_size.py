"""The size of a trimmed xlm-roberta-base-shaped model (README, Vocabulary trimming).

    python scripts/trim_size.py ../shared/assets WORKDIR

Random weights in the real architecture and the real XLM-R vocabulary, trimmed to the pieces of the Tatoeba
German + English text (tatoeba.deu-eng.deu and .eng, all lines). Prints parameters and safetensors bytes
before and after.
"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xlmlib


def main(assets: Path, work: Path) -> int:
    torch.manual_seed(0)
    model = xlmlib.MaskedLM(xlmlib.ModelConfig.from_preset("xlm-roberta-base"))
    model.reset_parameters()
    model.save_pretrained(work / "full")
    xlmlib.Tokenizer.from_pretrained(assets / "xlmr-spm-rebuilt").save_pretrained(work / "full")
    corpus = [assets / "tatoeba-laser-v1" / f"tatoeba.deu-eng.{s}" for s in ("deu", "eng")]
    start = time.perf_counter()
    r = xlmlib.trim_vocab(work / "full", work / "trimmed", corpus=corpus)
    seconds = time.perf_counter() - start
    before = (work / "full" / "model.safetensors").stat().st_size
    print(f"vocabulary {r.vocab_before:,} -> {r.vocab_after:,}; parameters {r.params_before:,} -> {r.params_after:,}; "
          f"model.safetensors {before:,} -> {r.file_bytes:,} bytes (fp32); trim took {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
