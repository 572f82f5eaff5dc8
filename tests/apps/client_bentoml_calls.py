"""Run inside BentoML's virtualenv: bentoml.SyncHTTPClient calling an asgiserve server; prints JSON."""

from __future__ import annotations

import json
import pathlib
import sys

import bentoml


def main() -> None:
    url, upload = sys.argv[1], pathlib.Path(sys.argv[2])
    out: dict[str, object] = {}
    with bentoml.SyncHTTPClient(url) as client:
        out["ready"] = client.is_ready()
        out["summarize"] = client.summarize(text="First sentence. Second one.")
        out["predict"] = client.predict(data={"name": "Alice", "age": 30})
        out["add"] = client.add(a=2, b=3)
        path = client.generate(img=upload, scale=2)
        out["generate"] = [pathlib.Path(path).name, pathlib.Path(path).read_bytes().decode()]
        out["stream"] = list(client.stream_data(n=3))
        try:
            client.add(a="not a number")
        except bentoml.exceptions.BentoMLException as exc:
            out["error"] = [type(exc).__name__, str(exc)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
