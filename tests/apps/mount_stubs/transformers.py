"""A stand-in for ``transformers.pipeline`` so the documented examples run without a model download.

Only the seed-example tests put this directory on ``PYTHONPATH``.
"""

from __future__ import annotations

from typing import Any


def pipeline(task: str) -> Any:
    """A "summarization" pipeline that keeps the first sentence of its input."""
    if task != "summarization":
        raise ValueError(f"this stand-in only knows 'summarization', not {task!r}")

    def summarize(text: str) -> list[dict[str, str]]:
        first = text.split(". ")[0].rstrip(".")
        return [{"summary_text": first + "."}]

    return summarize
