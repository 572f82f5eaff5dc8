"""Example service: an extractive summarizer in plain Python (no model download).

Sentences are scored by the document frequency of their content words; the top ones are returned in
their original order. ``make serve`` runs it on port 3000:

    curl -X POST localhost:3000/summarize -H 'content-type: application/json' -d '{"text": "..."}'
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncGenerator

import msgspec

import asgiserve as bentoml

EXAMPLE_INPUT = (
    "Breaking News: In an astonishing turn of events, the small town of Willow Creek has been taken by storm "
    "as local resident Jerry Thompson's cat, Whiskers, performed what witnesses are calling a 'miraculous and "
    "gravity-defying leap.' Eyewitnesses report that Whiskers, an otherwise unremarkable tabby cat, jumped a "
    "record-breaking 20 feet into the air to catch a fly. The event, which took place in Thompson's backyard, "
    "is now being investigated by scientists for potential breaches in the laws of physics. Local authorities "
    "are considering a town festival to celebrate what is being hailed as 'The Leap of the Century."
)

_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "being",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "what",
        "which",
        "who",
        "will",
        "with",
    ]
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9']+")


class Summarizer:
    """Frequency-based extractive summarization."""

    def __call__(self, text: str, sentences: int = 2) -> str:
        """The ``sentences`` highest-scoring sentences of ``text``, in their original order."""
        parts = [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]
        if len(parts) <= sentences:
            return " ".join(parts)
        freq = Counter(w for w in _WORD.findall(text.lower()) if w not in _STOP)
        scored = []
        for i, sentence in enumerate(parts):
            words = [w for w in _WORD.findall(sentence.lower()) if w not in _STOP]
            score = sum(freq[w] for w in words) / (len(words) or 1)
            scored.append((score, i))
        keep = sorted(i for _, i in sorted(scored, reverse=True)[:sentences])
        return " ".join(parts[i] for i in keep)


class Keyword(msgspec.Struct):
    """A word and its count."""

    word: str
    count: int


@bentoml.service(resources={"cpu": "2"}, traffic={"timeout": 10})
class Summarization:
    """Summarize text; also lists keywords and streams the summary word by word."""

    name = "Summarization"

    def __init__(self) -> None:
        self.pipeline = Summarizer()

    @bentoml.api
    def summarize(self, text: str = EXAMPLE_INPUT) -> str:
        """Return a two-sentence extractive summary."""
        return self.pipeline(text)

    @bentoml.api
    def keywords(self, text: str = EXAMPLE_INPUT, top: int = 5) -> list[Keyword]:
        """The most frequent content words."""
        words = Counter(w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2)
        return [Keyword(word=w, count=c) for w, c in words.most_common(top)]

    @bentoml.api
    async def stream_summary(self, text: str = EXAMPLE_INPUT) -> AsyncGenerator[str, None]:
        """Stream the summary one word at a time."""
        for word in self.pipeline(text).split(" "):
            yield word + " "


app = bentoml.to_asgi(Summarization)
