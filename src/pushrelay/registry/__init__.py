"""The device registry: which devices each app's users registered, and which are dead.

- :mod:`.tokens`: recognising, normalising, hashing and masking tokens and e-mail addresses;
- :mod:`.models`: the ``devices`` table;
- :mod:`.devices`: :class:`DeviceRegistry`, registering, resolving, streaming, retiring, pruning;
- :mod:`.hygiene`: retiring devices from delivery outcomes.
"""

from __future__ import annotations

from .devices import DeviceInfo, DeviceRecord, DeviceRegistry, Registration, RegistrationStatus
from .hygiene import Retirement, retire_dead_tokens, retirement_for
from .tokens import InvalidDeviceError, is_email, mask_token

__all__ = [
    "DeviceInfo",
    "DeviceRecord",
    "DeviceRegistry",
    "InvalidDeviceError",
    "Registration",
    "RegistrationStatus",
    "Retirement",
    "is_email",
    "mask_token",
    "retire_dead_tokens",
    "retirement_for",
]
