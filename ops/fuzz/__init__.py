"""renkei's own fuzzing (``make fuzz``): every RPC of every server, every mapper, every
legacy client's parser, fed random, mutated and hostile input; bounded and seeded.

``grpc_fuzz``   the servers (``world``: all of them, in process, over mutual TLS).
``mapper_fuzz`` the mappers, both directions, and the legacy clients' parse boundary.
``messages``    inputs from the descriptors, and byte mutations.
``report``      the table, and failing inputs kept as replayable corpus files.
``replay``      a kept corpus file run again (tests/fuzz_corpus holds every crash found).
"""
