"""The audit trail: security events in a tamper-evident hash chain.

``record`` is what one event says, ``chain`` the rules that make the trail
tamper-evident (canonical encoding, hashing, verification, checkpoints),
``trail`` the use cases (verify, prune), ``query`` the paged reading.
"""

from authsvc.domain.audit.chain import ChainRow, ChainVerifier, Checkpoint, Problem
from authsvc.domain.audit.query import AuditEntry, AuditFilter, AuditPage, query
from authsvc.domain.audit.record import AuditEvent, Outcome

__all__ = [
    "AuditEntry",
    "AuditEvent",
    "AuditFilter",
    "AuditPage",
    "ChainRow",
    "ChainVerifier",
    "Checkpoint",
    "Outcome",
    "Problem",
    "query",
]
