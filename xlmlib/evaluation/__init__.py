"""Cross-lingual evaluation: entity metrics (entities.py), words of raw text (words.py), predictions with label
names (predict.py: classify, tag), bitext retrieval and margin mining (mining.py), one evaluation across
languages (run.py: evaluate) and their verbs (cli.py)."""

from .entities import entities, entity_metrics, is_entity_tagset
from .mining import mine, retrieval_accuracy
from .predict import classify, tag
from .run import evaluate
from .words import Word, split_words

__all__ = ["Word", "classify", "entities", "entity_metrics", "evaluate", "is_entity_tagset", "mine",
           "retrieval_accuracy", "split_words", "tag"]
