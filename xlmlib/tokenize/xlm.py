"""XLM tokenizer: Moses preprocessing + BPE with "</w>", ids of the XLM Dictionary.

Pipeline and special ids follow formats.md section 2 (transformers' XLMTokenizer is the reference):
<s>=0, </s>=1, <pad>=2, <unk>=3, <special0..9>=4..13, mask = <special1> = 5; a text is `<s> A </s>`,
a pair `<s> A </s> B </s>`. Unlike transformers, `langs` is returned when the checkpoint has language
embeddings, and an unknown language code is an error rather than a logged message.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from ..atomic import write_json
from ..family import XLM
from . import align, moses
from .base import (
    CONFIG_NAME,
    BaseTokenizer,
    configured_max_length,
    read_json,
)
from .bpe import (
    BPE,
    END,
    SPECIAL_TOKENS,
    read_fastbpe_vocab,
    read_merges,
    read_vocab_json,
    write_vocab_and_merges,
)

logger = logging.getLogger(__name__)

XNLI15 = ["ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"]
MLM17 = ["ar", "de", "en", "es", "fr", "hi", "it", "ja", "ko", "nl", "pl", "pt", "ru", "sv", "tr", "vi", "zh"]
# The released codes_<name>/vocab_<name> files (XLM README) and how their checkpoints use them:
# lang2id is the sorted language list; XNLI-15 keeps 95000 ids (--max_vocab 95000) and is lowercased
# without accents; the en-fr and en-de vocabularies are cased (see shared/assets/PROVENANCE.md);
# the 17-language model has no language embeddings and keeps case (formats.md section 1; the
# codes_xnli_17 / vocab_xnli_17 names are from memory of the XLM README, not checked against files).
RELEASES = {
    "xnli_15": {"langs": XNLI15, "max_vocab": 95000, "lowercase": True, "use_lang_emb": True},
    "enfr": {"langs": ["en", "fr"], "max_vocab": None, "lowercase": False, "use_lang_emb": True},
    "ende": {"langs": ["de", "en"], "max_vocab": None, "lowercase": False, "use_lang_emb": True},
    "xnli_17": {"langs": MLM17, "max_vocab": 200000, "lowercase": False, "use_lang_emb": False},
}
_CACHE_LIMIT = 500_000


class XLMTokenizer(BaseTokenizer):
    bos_id, eos_id, pad_id, unk_id, mask_id = 0, 1, 2, 3, 5
    framing = XLM.tokenizer_framing(bos_id, eos_id)  # <s> A </s> B </s> (transformers; XLM's own code opens with </s>)
    model_max_length = 512  # XLM's N_MAX_POSITIONS
    # transformers splits its added tokens (all 14 specials) out of the text before the Moses pipeline,
    # so "<special1>" written in a text is the mask token; the pieces between are tokenized separately.
    special_split = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
    space_marker = END

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], *, lang2id=None,
                 use_lang_emb: bool | None = None, do_lowercase_and_remove_accent: bool = True,
                 model_max_length: int = 512, default_lang: str = "en"):
        self.vocab = dict(vocab)
        for i, tok in enumerate(SPECIAL_TOKENS):
            if self.vocab.get(tok) != i:
                raise ValueError(f"vocabulary must map {tok!r} to {i} (the XLM Dictionary layout)")
        self.id2token = {i: t for t, i in self.vocab.items()}
        self.bpe = BPE(merges)
        self.lang2id = None if lang2id is None else {str(k): int(v) for k, v in lang2id.items()}
        self.use_lang_emb = bool(self.lang2id and len(self.lang2id) > 1) if use_lang_emb is None else use_lang_emb
        if self.use_lang_emb and not self.lang2id:
            raise ValueError("use_lang_emb needs a lang2id mapping")
        self.do_lowercase_and_remove_accent = do_lowercase_and_remove_accent
        self.model_max_length = int(model_max_length)
        self.default_lang = default_lang
        self.vocab_size = max(self.id2token) + 1
        self._cache: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {}

    # -- loading and saving ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, src, **overrides) -> XLMTokenizer:
        """A folder with vocab.json + merges.txt (ours or transformers'), or released codes_*/vocab_*."""
        src = Path(src)
        if (src / "vocab.json").is_file() or (src / "merges.txt").is_file():
            config = read_json(src / CONFIG_NAME) if (src / CONFIG_NAME).is_file() else {}
            kwargs = _config_kwargs(config, src)
            kwargs.update(overrides)
            return cls(read_vocab_json(src / "vocab.json"), read_merges(src / "merges.txt"), **kwargs)
        return cls._from_release_folder(src, overrides)

    @classmethod
    def _from_release_folder(cls, src: Path, overrides: dict) -> XLMTokenizer:
        names = sorted(p.name[len("codes_"):] for p in src.glob("codes_*"))
        release = overrides.pop("release", None)
        if not names:
            raise FileNotFoundError(f"{src}: no vocab.json + merges.txt and no released codes_* file")
        if release is None and len(names) > 1:
            raise ValueError(f"{src} holds several XLM releases {names}: pass release=<one of them>")
        release = release or names[0]
        if release not in names:
            raise FileNotFoundError(f"{src}: no codes_{release} (found {names})")
        return cls.from_released(src / f"codes_{release}", src / f"vocab_{release}", **overrides)

    @classmethod
    def from_released(cls, codes_file, vocab_file, *, max_vocab=None, **overrides) -> XLMTokenizer:
        name = Path(codes_file).name[len("codes_"):]
        release = RELEASES.get(name)
        if release is None:
            logger.warning("unknown XLM release %r: pass lang2id / max_vocab / "
                           "do_lowercase_and_remove_accent explicitly", name)
            release = {"langs": None, "max_vocab": None, "lowercase": True, "use_lang_emb": None}
        langs = release["langs"]
        kwargs = {"lang2id": None if langs is None else {lg: i for i, lg in enumerate(langs)},
                      "use_lang_emb": release["use_lang_emb"], "do_lowercase_and_remove_accent": release["lowercase"]}
        kwargs.update(overrides)
        vocab = read_fastbpe_vocab(vocab_file, max_vocab or release["max_vocab"])
        return cls(vocab, read_merges(codes_file), **kwargs)

    def save_pretrained(self, directory) -> Path:
        """vocab.json + merges.txt + tokenizer_config.json: loadable here and by transformers."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_vocab_and_merges(directory, self.vocab, self.bpe.merges)
        config = {
            "tokenizer_class": "XLMTokenizer",
            "do_lowercase_and_remove_accent": self.do_lowercase_and_remove_accent,
            "model_max_length": self.model_max_length,
            "use_lang_emb": self.use_lang_emb,
            "default_lang": self.default_lang,
        }
        if self.lang2id is not None:
            config["lang2id"] = self.lang2id
            config["id2lang"] = {str(v): k for k, v in self.lang2id.items()}
        write_json(directory / CONFIG_NAME, config)
        return directory

    def trimmed_to(self, keep_ids) -> XLMTokenizer:
        """A tokenizer over the ids `keep_ids` only (the 14 specials always kept), renumbered in their order.
        Merges whose result no kept entry is built from are dropped: on text whose pieces were all kept
        they never fire, so its segmentation, and its ids after the remap, are unchanged."""
        keep = sorted(set(range(len(SPECIAL_TOKENS))) | {int(i) for i in keep_ids if int(i) in self.id2token})
        vocab = {self.id2token[old]: new for new, old in enumerate(keep)}
        needed = set(vocab)
        kept_merges = []
        for first, second in reversed(self.bpe.merges):  # a merge only consumes results of earlier merges
            if first + second in needed:
                needed.update((first, second))
                kept_merges.append((first, second))
        return XLMTokenizer(vocab, kept_merges[::-1], lang2id=self.lang2id, use_lang_emb=self.use_lang_emb,
                            do_lowercase_and_remove_accent=self.do_lowercase_and_remove_accent,
                            model_max_length=self.model_max_length, default_lang=self.default_lang)

    # -- languages ------------------------------------------------------------------------------
    def _lang_ids(self, lang, n):
        langs = super()._lang_ids(lang, n)
        for lg in langs:
            if lg is not None and self.lang2id is not None and lg not in self.lang2id:
                raise ValueError(f"unknown language {lg!r}; this tokenizer knows {sorted(self.lang2id)}")
        return langs

    def _langs_tensor_values(self, langs):
        if not self.use_lang_emb:
            return None
        if any(lg is None for lg in langs):
            raise ValueError(f"this checkpoint has language embeddings: pass lang= one of {sorted(self.lang2id)}")
        return [self.lang2id[lg] for lg in langs]

    # -- the pipeline ---------------------------------------------------------------------------
    def pre_tokenize(self, text: str, lang: str | None = None) -> list[str]:
        """Moses-level tokens before lowercasing and BPE (formats.md section 2, steps 3-4)."""
        lang = lang or self.default_lang
        if lang == "zh":
            text = " ".join(_optional("rjieba", "zh").cut(text))
            return moses.moses_pipeline(text, lang).split()
        text = moses.moses_pipeline(text, lang)
        if lang == "th":
            return list(_optional("pythainlp.tokenize", "th").word_tokenize(text))
        if lang == "ja":
            return list(_kytea().getWS(text))
        if lang == "ro":
            text = moses.romanian_preprocessing(text)
        return moses.moses_tokenizer(lang).tokenize(text)

    def _word(self, token: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """Ids and BPE pieces of one Moses token (lowercased first when the checkpoint is), cached."""
        hit = self._cache.get(token)
        if hit is not None:
            return hit
        words = moses.lowercase_and_remove_accent(token) if self.do_lowercase_and_remove_accent else token
        pieces: list[str] = []
        # Joining tokens with " " and splitting again, as XLM does, turns a space inside a token
        # (a segmenter may emit one) into separate words and drops empty ones.
        for word in words.split(" "):
            if word:
                pieces += self.bpe.segment(word)
        get, unk = self.vocab.get, self.unk_id
        hit = (tuple(get(p, unk) for p in pieces), tuple(pieces))
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = hit
        return hit

    def _encode_text(self, text: str, lang=None, with_offsets: bool = False):
        tokens = self.pre_tokenize(text, lang)
        ids: list[int] = []
        pieces: list[str] = []
        word = self._word
        for token in tokens:
            hit = word(token)
            ids += hit[0]
            if with_offsets:
                pieces += hit[1]
        if not with_offsets:
            return ids, None
        surfaces = [p.removesuffix(END) for p in pieces]
        lowercase = self.do_lowercase_and_remove_accent
        return ids, align.token_spans(text, surfaces, lang or self.default_lang, lowercase)

    # -- public helpers ------------------------------------------------------------------------
    def _tokens(self, text: str, lang: str | None = None) -> list[str]:
        pieces = []
        for part, special in self._segments(text):
            if special:
                pieces.append(part)
                continue
            for token in self.pre_tokenize(part, lang) if part else ():
                pieces += self._word(token)[1]
        return pieces

    def _build_word_tables(self):
        """A token ending in </w> closes a word."""
        ends = torch.zeros(self.vocab_size, dtype=torch.bool)
        for i, token in self.id2token.items():
            ends[i] = token.endswith(END)
        special = torch.zeros(self.vocab_size, dtype=torch.bool)
        special[:len(SPECIAL_TOKENS)] = True
        return special, None, ends

    def is_special_id(self, i: int) -> bool:
        return i < len(SPECIAL_TOKENS)

    def id_to_token(self, i: int) -> str:
        return self.id2token.get(int(i), "<unk>")

    def token_to_id(self, token: str) -> int:
        return self.vocab.get(token, self.unk_id)

    def __repr__(self) -> str:
        langs = None if self.lang2id is None else sorted(self.lang2id)
        return f"XLMTokenizer(vocab_size={self.vocab_size}, langs={langs}, use_lang_emb={self.use_lang_emb})"


def _config_kwargs(config: dict, src: Path) -> dict:
    """Our tokenizer_config keys, or transformers' (lang2id, do_lowercase_and_remove_accent, ...)."""
    kwargs = {}
    for key in ("lang2id", "use_lang_emb", "do_lowercase_and_remove_accent", "default_lang"):
        if config.get(key) is not None:
            kwargs[key] = config[key]
    kwargs["model_max_length"] = configured_max_length(config, XLMTokenizer.model_max_length)
    model_config = src / "config.json"  # a transformers XLMConfig next to the tokenizer says it directly
    if "use_lang_emb" not in kwargs and model_config.is_file():
        cfg = read_json(model_config)
        if "use_lang_emb" in cfg:
            kwargs["use_lang_emb"] = bool(cfg["use_lang_emb"]) and int(cfg.get("n_langs", 1)) > 1
    if "use_lang_emb" not in kwargs and len(kwargs.get("lang2id") or ()) > 1:
        # transformers' tokenizer_config does not say it; xlm-mlm-17/100 list languages but have no
        # language embeddings (formats.md section 1), so the guess can be wrong for them.
        logger.info("%s: use_lang_emb not recorded, assuming True from lang2id; pass use_lang_emb=False "
                    "for checkpoints without language embeddings (xlm-mlm-17-1280, xlm-mlm-100-1280)", src)
    return kwargs


def _optional(module: str, extra: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"XLM's {extra!r} segmentation needs {module.split('.')[0]}: "
                          f"pip install 'xlmlib[{extra}]'") from None


def _kytea():
    import os

    mykytea = _optional("Mykytea", "ja")
    return mykytea.Mykytea(f"-model {os.path.expanduser('~')}/local/share/kytea/model.bin")
