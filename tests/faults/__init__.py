"""Fault tests: real processes and sockets on 127.0.0.1, each a case that must not lose or repeat work."""
