"""The requester's side of the communication server (X-Road's client proxy).

The agency's own legacy terminals ask through it: ``Query`` (one person),
``BulkQuery`` (up to 5,000) and ``FetchAnswer`` (an answer that comes later).
Both queries are one pipeline (``pipeline.Requester``), a single query being a
batch of one; how the batch travels to the hub and back is the envelope
(``envelope``): sealed per person over ``Relay``, or as one message over
``BulkRelay``. ``servicer`` translates the RPCs to the pipeline and back.
"""
