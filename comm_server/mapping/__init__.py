"""The mapper SDK: legacy record formats <-> the standard layout (renkei.layout.v1).

An integration engineer describes a legacy format in a TOML spec (fixed-width
byte offsets, CSV columns, XML or JSON paths), adds Python hooks for the odd
fields, registers the mapper under the ``renkei.mappers`` entry-point group and
tries it with ``renkei mapper check``. Tutorial: docs/mapper-tutorial.md.

Import from the modules (nothing is re-exported):

``registry``    ``load_mapper(format)``, ``known_formats()``, ``load_mapper_or_spec``.
``mapper``      the ``Mapper`` protocol (``decode(kind, raw)``, ``encode(kind, record)``)
                and ``SpecMapper``, a mapper driven by a spec.
``spec``        ``load_spec``: reading a spec and refusing gaps, overlaps and unknowns.
``fieldtypes``  the field types (ascii, digits, unsigned, signed, text, kana, era_date,
                date, year_month, bool, code, constant, filler, ignore, packed, hook).
``hooks``       built-in hooks (``era_date_or_unknown``).
``layout``      kinds of information -> ``StandardRecord`` cases; ``LAYOUT_VERSION``.
``errors``      ``MappingError`` (a bad record), ``SpecError``, ``UnknownFormat``.
``documents``   ``parse_xml``/``parse_json`` within limits (no DTD, depth, size), for all.
``builtin``     the four built-in mappers (specs in ``specs/``).
``check``       ``renkei mapper check``; ``bench``: records per second per mapper.
"""
