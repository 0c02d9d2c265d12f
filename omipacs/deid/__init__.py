"""De-identification on ingest: PS3.15 Annex E as data, keyed pseudonyms, an identity map.

The ingest pipeline calls :meth:`Deidentifier.apply` on every header from a source that
must be de-identified; the result carries the cleaned header, new File Meta
Information, the client pseudonym and, when the pixels may identify the patient, a
quarantine reason. See :mod:`omipacs.deid.profile` for what happens to each attribute
and :mod:`omipacs.deid.pseudonyms` for how pseudonyms are made.
"""

from __future__ import annotations

from omipacs.deid.engine import Deidentifier, DeidResult, quarantine_reason
from omipacs.deid.identity import IdentityMap
from omipacs.deid.keys import DeidKeys, create_demo_key, load_keys
from omipacs.deid.profile import DEFAULT_PROFILE, Profile
from omipacs.deid.pseudonyms import ClientPseudonym

__all__ = [
    "DEFAULT_PROFILE",
    "ClientPseudonym",
    "DeidKeys",
    "DeidResult",
    "Deidentifier",
    "IdentityMap",
    "Profile",
    "create_demo_key",
    "load_keys",
    "quarantine_reason",
]
