"""The verifiable log's pieces (issue 14): the hub's access log as a transparency log.

``merkle`` is the RFC 9162 Merkle tree (hashes, roots, inclusion and consistency
proofs, an append-only tree over a store of node hashes). Nothing here knows
about the hub; the hub's log, checkpoints and tiles are built on top.
"""
