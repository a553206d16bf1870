"""Binding: who each local person is to the hub (R13-R15, R20) and keeping it so.

Binding one person or a whole file by the four facts (``bind``, ``bulk_bind``,
``person_file``), with consent for private bodies (``consent``), re-keying the
correspondence table (``rekey``), and following the registry's changes of bound
persons (``feed``, ``person_facts``). No exchange code imports this package.
"""
