"""gptpipe: declarative GPT training driven by small train scripts."""

__version__ = "0.1.0"
