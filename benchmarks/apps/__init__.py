"""The peers' apps: every one serves the same work (see ``workload.py``)."""
