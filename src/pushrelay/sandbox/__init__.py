"""A local, faithful APNs for tests, demos and development: HTTP/2 over TLS with Apple's rules.

    from pushrelay.sandbox import ApnsSandbox

    async with ApnsSandbox() as sb:
        key_file = sb.create_key("TEAM123456", "ABC123DEFG")
        sb.add_topic("com.sample.myappname", "TEAM123456")
        # point an APNs client at sb.url, trusting sb.ca_file ...
        sb.received(token)     # what the device got

See docs/sandbox.md.
"""

from __future__ import annotations

from .apns_sandbox import ApnsSandbox, SandboxStats
from .records import Received
from .scripting import BEHAVIOURS

__all__ = ["BEHAVIOURS", "ApnsSandbox", "Received", "SandboxStats"]
