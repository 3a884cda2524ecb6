"""xlmlib: XLM and XLM-RoBERTa in plain PyTorch."""

__version__ = "0.1.0"

__all__ = ["__version__"]
