"""The summarizer on Ray Serve, two replicas behind Serve's proxy on 127.0.0.1:8000.

    pip install 'ray[serve]'
    python examples/ray_serve.py      # then: curl -X POST localhost:8000/summarize -d '{"text": "..."}'
"""

from __future__ import annotations

import time

import ray
from ray import serve
from summarizer import Summarization

import asgiserve.ray

if __name__ == "__main__":
    ray.init(include_dashboard=False)
    serve.start(http_options={"host": "127.0.0.1", "port": 8000})
    app = asgiserve.ray.deployment(Summarization, num_replicas=2, ray_actor_options={"num_cpus": 0.5})
    serve.run(app.bind(), route_prefix="/")
    print("Summarization on http://127.0.0.1:8000 (2 replicas); Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
