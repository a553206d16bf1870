"""The provider's side of the communication server (X-Road's server proxy).

The hub asks through it: ``Provide`` and ``ProvideStream`` (one person per
call), ``BulkProvide`` (up to 5,000) and ``Collect`` (an answer given later).
Every provide call is one pipeline (``pipeline.Provider``), a single call
being a batch of one: the person's local number, the timed legacy lookup
(``lookup``: a late answer is logged and discarded, never relayed), the
mapper, the seal and one log row per person. How the queries arrive and the
answers leave sealed is the envelope (``envelope``). A legacy system that
answers by file gives a single call a ticket instead (``answer_later``).
"""
