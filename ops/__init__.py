"""renkei's tooling: the ``renkei`` command, deployment, the audit, the demo, load and benchmarks.

It stands above every party and may import any of them; nothing imports it.
"""
