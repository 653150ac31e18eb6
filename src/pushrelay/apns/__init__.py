"""Apple Push Notification service: credentials, payloads, answers and the client."""

from .auth import TokenAuth
from .certificate import CertificateAuth
from .client import DEVELOPMENT_ENDPOINT, PRODUCTION_ENDPOINT, ApnsClient, ApnsStats
from .payload import ApnsRequest, render
from .reasons import REASONS, classify
from .sync import SyncApnsClient

__all__ = [
    "DEVELOPMENT_ENDPOINT",
    "PRODUCTION_ENDPOINT",
    "REASONS",
    "ApnsClient",
    "ApnsRequest",
    "ApnsStats",
    "CertificateAuth",
    "SyncApnsClient",
    "TokenAuth",
    "classify",
    "render",
]
