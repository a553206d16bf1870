"""The registry's binding party: four-fact matching, consent and the agencies' change feed.

Agencies bind their records to residents by the four facts (R13-R15,
``MatchRecords``), private bodies with the person's consent (R20,
``MatchWithConsent``), and follow the persons they bound (R14,
``ListChanges``), over mutual TLS as ``renkei.registry.v1.BindingService``.
On the same port, ``renkei.registry.v1.ResidentDirectoryService`` tells the
numbering agency (only) which of the resident codes it sends exist (R8), so
that it needs no access to the register's store.

It reads residents only through ``renkei.residents.ResidentSource``, opened by
name from the ``renkei.resident_sources`` entry-point group (the mocked
Juki-net by default), and keeps its own tables in its own store.

Modules
-------
``records``        an agency record and its field-by-field normalisation.
``matching``       ``Matcher``: the register's four facts indexed, the binding rule.
``store``          ``BindingStore``: subscriptions, deliveries, feed_state, consent_log.
``subscriptions``  handles per agency and person, the register's feed into each agency's queue.
``consent``        the consent flow for private bodies and its log.
``binding``        ``RegistryBinding``: match a batch, seal the unique ones, mint handles.
``sealer``         the ID issuer as this party sees it (``Sealer``, ``GrpcSealer``).
``servicer``       the gRPC servicer: proto <-> domain.
``directory``      ``ResidentDirectoryServicer``: existence of resident codes, for numbering.
``sources``        opening the configured ``ResidentSource`` by entry point.
``config``         ``RegistryBindingConfig`` from registry.toml.
``bootstrap``      ``create_server(config)``, ``serve(path)``.
"""
