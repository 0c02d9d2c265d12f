"""Conformance: the statement generated from the code's tables, and the self-test.

Both read adapters' tables (web routes, DIMSE contexts) and the self-test is a DICOMweb
and DIMSE *client*, so this package sits with the entry points, not in core.
"""
