"""iOS simulator delivery through ``xcrun simctl push`` (4D parity; macOS with Xcode only).

See :class:`SimulatorClient`.
"""

from __future__ import annotations

from .client import SimulatorClient, is_simulator_token

__all__ = ["SimulatorClient", "is_simulator_token"]
