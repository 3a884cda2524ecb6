"""Fine-tuning: readers on the real XNLI / PAWS-X file formats, first-sub-token label alignment, and the
`xlmlib finetune` command on small synthetic tasks. Expected counts and first rows are from
shared/assets/PROVENANCE.md; accuracy thresholds were measured with these seeds (see comments)."""

import json
import random

from xlmlib.cli import main
from xlmlib.losses import IGNORE_INDEX
from xlmlib.train.finetune import Encoded
from xlmlib.train.readers import Example, read_classification, read_conll

from .synthetic import K, save_tiny, tiny_config, write_lines


def test_reads_xnli_headerless_tsv(assets):
    dev = read_classification(assets / "xnli-de-xglue" / "dev.txt", lang="de")
    assert dev[0] == Example("und er hat gesagt, Mama ich bin daheim.",
                             "Er rief seine Mutter an, sobald er aus dem Schulbus stieg.", "neutral", "de")
    assert len(dev) == 250 and {e.label for e in dev} == {"entailment", "neutral", "contradiction"}


def test_reads_pawsx_tsv_with_header(assets):
    dev = read_classification(assets / "pawsx-de" / "dev.tsv", lang="de")
    assert len(dev) == 2000
    assert sum(e.label == "0" for e in dev) == 1169 and sum(e.label == "1" for e in dev) == 831
    assert dev[0].text.startswith("Durch die Zusammenlegung") and dev[0].text_pair.startswith("Shawnee")


def test_reads_jsonl_with_languages(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"premise": "p", "hypothesis": "h", "label": "neutral", "lang": "fr"}\n'
                    '{"sentence1": "s", "label": 1}\n')
    assert read_classification(path, lang="en") == [Example("p", "h", "neutral", "fr"), Example("s", "", "1", "en")]


class _TwoLetterPieces:
    """Splits every word into two-letter pieces, ids from a growing table (so words have several sub-tokens)."""

    vocab_size = 1000

    def __init__(self):
        self.table = {}

    def encode(self, text, lang=None):
        pieces = [w[i : i + 2] for w in text.split() for i in range(0, len(w), 2)]
        return [self.table.setdefault(p, 10 + len(self.table)) for p in pieces]


def test_conll_labels_go_to_the_first_sub_token_only(tmp_path):
    path = write_lines(tmp_path / "ner.conll", ["-DOCSTART- O", "", "Paris NNP B-LOC", "is VBZ O",
                                                "big JJ O", "", "Anna NNP B-PER"])
    sentences = read_conll(path)
    assert [s.words for s in sentences] == [("Paris", "is", "big"), ("Anna",)]
    data = Encoded(sentences, _TwoLetterPieces(), tiny_config(), ["O", "B-LOC", "B-PER"], task="token",
                   max_len=32, langs={})
    # </s> Pa ri s | is | bi g </s>: Paris -> 3 pieces, big -> 2; labels on Pa, is, bi.
    assert data.targets[0] == [IGNORE_INDEX, 1, IGNORE_INDEX, IGNORE_INDEX, 0, 0, IGNORE_INDEX, IGNORE_INDEX]
    assert len(data.rows[0]) == len(data.targets[0]) == 8


def _sequence_task(path, n, seed):
    """Label "hi" when the first word's index is >= K/2: learnable from one token."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.randrange(K) for _ in range(rng.randint(3, 8))]
        lang = rng.choice(["en", "fr"])
        label = "hi" if words[0] >= K // 2 else "lo"
        rows.append(json.dumps({"text": " ".join(f"a{w}" for w in words), "label": label, "lang": lang}))
    return write_lines(path, rows)


def test_finetune_command_sequence_classification(tmp_path, capsys):
    model = save_tiny(tmp_path / "tiny")
    args = ["finetune", "--model", str(model), "--tokenizer", str(model / "vocab.txt"), "--task", "sequence",
            "--train", str(_sequence_task(tmp_path / "train.jsonl", 400, 1)),
            "--dev", str(_sequence_task(tmp_path / "dev.jsonl", 100, 2)),
            "--test", str(_sequence_task(tmp_path / "test.jsonl", 100, 3)), "--labels", "lo,hi",
            "--steps", "150", "--batch-size", "16", "--lr", "2e-3", "--eval-every", "50", "--out",
            str(tmp_path / "run"), "--no-progress", "--warmup-steps", "10"]
    assert main(args) == 0
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    test = result["test"][str(tmp_path / "test.jsonl")]
    assert set(test["per_lang"]) == {"en", "fr"} and test["n"] == 100
    assert test["accuracy"] > 0.9  # measured 1.00 (chance 0.5)
    assert list((tmp_path / "run" / "best").iterdir())  # the best dev model was kept
    assert "fr" in capsys.readouterr().out  # the per-language table
    print(f"sequence task test accuracy {test['accuracy']:.3f}")


def test_finetune_command_token_classification(tmp_path):
    rng = random.Random(4)
    lines = []
    for _ in range(200):
        for _ in range(rng.randint(3, 8)):
            w = rng.randrange(K)
            lines.append(f"a{w} {'EVEN' if w % 2 == 0 else 'ODD'}")
        lines.append("")
    data = write_lines(tmp_path / "train.conll", lines)
    model = save_tiny(tmp_path / "tiny")
    args = ["finetune", "--model", str(model), "--tokenizer", str(model / "vocab.txt"), "--task", "token",
            "--train", str(data), "--dev", str(data), "--steps", "120", "--batch-size", "16", "--lr", "3e-3", "--lang", "en",
            "--eval-every", "40", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(args) == 0
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result["labels"] == ["EVEN", "ODD"]
    print(f"token task dev accuracy {result['best']['score']:.3f}")
    assert result["best"]["metric"] == "accuracy" and result["best"]["score"] > 0.9  # measured 1.00 (chance 0.5)


def test_finetuning_trains_the_heads_own_loss():
    """The trainer's ClassificationLoss sums the head's own loss (SequenceClassifier.loss / TokenClassifier.loss),
    so its sum over the targets is the loss the model reports; that makes the head's regression branch
    (num_labels == 1, float labels) reachable from fine-tuning too."""
    import torch

    from xlmlib import SequenceClassifier, TokenClassifier
    from xlmlib.losses import count_targets
    from xlmlib.train.step import ClassificationLoss

    from .synthetic import tiny_model

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(6, 50, (4, 7), generator=g)
    cases = [
        (tiny_model(SequenceClassifier, n_langs=1, num_labels=3), torch.tensor([0, 2, 1, 2])),
        (tiny_model(SequenceClassifier, n_langs=1, num_labels=1), torch.tensor([0.5, -1.0, 2.0, 0.0])),
        (tiny_model(TokenClassifier, n_langs=1, num_labels=3),
         torch.randint(0, 3, (4, 7), generator=g).index_fill(1, torch.tensor([0, 6]), IGNORE_INDEX)),
    ]
    for model, labels in cases:
        model.eval()
        loss_sum, _ = ClassificationLoss(model)({"input_ids": ids, "labels": labels})
        reported = model(ids, labels=labels).loss
        assert torch.allclose(loss_sum / count_targets(labels), reported, atol=1e-6)
