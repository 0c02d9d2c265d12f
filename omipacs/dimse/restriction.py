"""What a DIMSE peer may see: the one seam between Query/Retrieve and access control.

C-FIND, C-MOVE and C-GET all ask :func:`dimse_restriction` for the condition every
match must meet, the same ``restrict`` condition QIDO-RS and WADO-RS apply
(:func:`omipacs.web.context.restriction`): it is ANDed into the query service's
``WHERE``, so no key can reach past it. A peer mapped to a licence will get that
licence's cohort here; a peer on the ``[[dimse.peers]]`` allow-list without such a
mapping sees the whole archive, which is what the allow-list grants today.
"""

from __future__ import annotations

from omipacs.index.visibility import Visibility
from omipacs.services import Services


def dimse_restriction(services: Services, calling_ae: str) -> Visibility | None:
    """What ``calling_ae`` may see (a :class:`Visibility`); None: everything.

    Only allow-listed peers reach a handler (others are refused at association), so
    ``calling_ae`` is always a known peer here.
    """
    del services, calling_ae
    return None
