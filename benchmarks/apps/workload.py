"""The work every peer serves, as constants: request bodies and the exact responses expected.

Standard library only: BentoML and LitServe import it from their own virtualenvs.
"""

from __future__ import annotations

import json

TEXT = "the quick brown fox jumps over the lazy dog while the model serves it"
PREDICT_BODY = json.dumps({"text": TEXT}, separators=(",", ":")).encode()
PREDICT_EXPECTED = {"result": TEXT.upper(), "length": len(TEXT)}
PREDICT_RESPONSE = json.dumps(PREDICT_EXPECTED, separators=(",", ":")).encode()

HELLO_EXPECTED = {"message": "hello"}
HELLO_RESPONSE = json.dumps(HELLO_EXPECTED, separators=(",", ":")).encode()

# Streaming: the api yields TOKENS copies of TOKEN, yielding to the event loop between them as a model
# stepping elsewhere would; clients count tokens as body bytes divided by len(TOKEN).
TOKEN = "token "
TOKENS = 64
STREAM_BODY = json.dumps({"text": TEXT, "tokens": TOKENS}, separators=(",", ":")).encode()
