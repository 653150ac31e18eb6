"""The APNs topics (bundle ids) a push certificate is valid for. Pure functions, no I/O.

Apple puts the app's bundle id in the subject UID (``0.9.2342.19200300.100.1.1``) and in the common
name ``Apple Push Services: <bundle>`` (older certificates: ``Apple Production IOS Push Services:
<bundle>`` and the like). Universal certificates also carry the private extension
``1.2.840.113635.100.6.3.6``: a DER ``SEQUENCE`` alternating a UTF8String topic and a ``SEQUENCE``
of its kinds, e.g. ``"com.example.app", {"app"}, "com.example.app.voip", {"voip"}``.
"""

from __future__ import annotations

import logging
import re

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

__all__ = ["APPLE_TOPICS_EXTENSION", "certificate_topics", "parse_topics_extension"]

log = logging.getLogger(__name__)

APPLE_TOPICS_EXTENSION = ObjectIdentifier("1.2.840.113635.100.6.3.6")

_PUSH_CN = re.compile(r"Apple (?:[A-Za-z]+ )*Push Services: (\S+)")

_SEQUENCE = 0x30
_OCTET_STRING = 0x04
_UTF8_STRING = 0x0C


def _read_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER element at ``pos``: (tag, contents, position after it). ValueError when malformed."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER element")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not used in this extension")
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("DER element runs past the end")
    return tag, data[pos:end], end


def parse_topics_extension(value: bytes) -> list[str]:
    """The topic strings of Apple's topics extension value (the extnValue contents)."""
    tag, body, _ = _read_tlv(value, 0)
    if tag == _OCTET_STRING:  # some certificate tools wrap the value in one more OCTET STRING
        tag, body, _ = _read_tlv(body, 0)
    if tag != _SEQUENCE:
        raise ValueError("the topics extension is not a SEQUENCE")
    topics: list[str] = []
    pos = 0
    while pos < len(body):
        tag, item, pos = _read_tlv(body, pos)
        # The SEQUENCE after each topic lists its kinds ("app", "voip"...); the topic string already
        # carries the matching suffix, which is all apns-topic needs.
        if tag == _UTF8_STRING:
            topics.append(item.decode("utf-8"))
    return topics


def _attribute(cert: x509.Certificate, oid: ObjectIdentifier) -> str | None:
    values = cert.subject.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def certificate_topics(cert: x509.Certificate) -> tuple[str, ...]:
    """Bundle id from the UID (or the push CN) first, then the extension's topics, without duplicates."""
    topics: list[str] = []
    uid = _attribute(cert, NameOID.USER_ID)
    if uid:
        topics.append(uid)
    else:
        cn = _attribute(cert, NameOID.COMMON_NAME)
        match = _PUSH_CN.fullmatch(cn) if cn else None
        if match:
            topics.append(match.group(1))
    try:
        extension = cert.extensions.get_extension_for_oid(APPLE_TOPICS_EXTENSION)
    except x509.ExtensionNotFound:
        extension = None
    except ValueError as exc:  # another extension of the certificate is malformed
        log.warning("cannot read the extensions of certificate %s: %s", cert.subject.rfc4514_string(), exc)
        extension = None
    if extension is not None and isinstance(extension.value, x509.UnrecognizedExtension):
        try:
            extra = parse_topics_extension(extension.value.value)
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning(
                "ignoring the malformed APNs topics extension of certificate %s (%s); using its subject only",
                cert.subject.rfc4514_string(),
                exc,
            )
            extra = []
        for topic in extra:
            if topic not in topics:
                topics.append(topic)
    return tuple(topics)
