"""funfactory: a data factory and trainer for LLM-based speech recognition (Fun-ASR, 2025)."""

__version__ = "0.1.0"
