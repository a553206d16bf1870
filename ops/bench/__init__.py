"""Benchmarks run by ``renkei bench``: the linkage harness (``linkage``), nginx as a
relay hop and TLS bridge (``nginx``), and gRPC frames for tools of elsewhere (``frame``)."""
