"""`renkei load`: a load generator for the hub, a communication server or the numbering agency.

Modules: ``scenario`` (the TOML request mix), ``targets`` (a scenario entry
to a gRPC call), ``endpoints`` (addresses, certificates, the loopback rule),
``rate`` (the open-loop send schedule), ``stats`` (HdrHistogram recording,
merging and outcome tallies), ``runner`` (closed and open loop, one or several
worker processes), ``report`` (table and JSON), ``plot`` (PNG), ``cli`` (the
command).
"""
