"""Reading credential files and splitting PEM text, with errors that say what the file really holds.

Shared by token auth (``.p8``) and certificate auth (``.p12`` / PEM). Nothing here ever puts file
*contents* into a message: only the file name, the PEM labels found and what was expected.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ._exceptions import CredentialsError

__all__ = ["PemBlock", "display_name", "find_blocks", "looks_like_der_sequence", "read_credential_file"]

# Credential files are a few kilobytes; anything this large was picked by mistake (a log, a disk image).
MAX_CREDENTIAL_FILE_SIZE = 1024 * 1024

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


@dataclass(frozen=True, slots=True)
class PemBlock:
    label: str  # e.g. "PRIVATE KEY", "CERTIFICATE"
    text: bytes  # the whole block, BEGIN and END lines included

    @property
    def encrypted(self) -> bool:
        # PKCS#8 encryption shows in the label; legacy OpenSSL encryption in a Proc-Type header.
        return self.label == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in self.text


def display_name(path: str | os.PathLike[str]) -> str:
    return os.fspath(path)


def read_credential_file(path: str | os.PathLike[str], *, what: str, field: str) -> bytes:
    """The bytes of ``path``, or a :class:`CredentialsError` naming the file and the reason."""
    name = display_name(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CREDENTIAL_FILE_SIZE + 1)
    except FileNotFoundError:
        raise CredentialsError(f"{what} {name} does not exist", field=field, file=name) from None
    except IsADirectoryError:
        raise CredentialsError(f"{what} {name} is a directory, not a file", field=field, file=name) from None
    except PermissionError:
        raise CredentialsError(
            f"cannot read {what} {name}: permission denied", field=field, file=name
        ) from None
    except OSError as exc:
        raise CredentialsError(f"cannot read {what} {name}: {exc.strerror}", field=field, file=name) from None
    if len(data) > MAX_CREDENTIAL_FILE_SIZE:
        raise CredentialsError(
            f"{what} {name} is larger than {MAX_CREDENTIAL_FILE_SIZE} bytes: not a credential file",
            field=field,
            file=name,
        )
    if not data.strip():
        raise CredentialsError(f"{what} {name} is empty", field=field, file=name)
    return data


def find_blocks(data: bytes) -> list[PemBlock]:
    """Every complete PEM block in ``data``, in file order (text around them is ignored)."""
    return [PemBlock(m.group(1).decode("ascii"), m.group(0)) for m in _BLOCK.finditer(data)]


def looks_like_der_sequence(data: bytes) -> bool:
    """True when ``data`` starts like binary DER (a SEQUENCE): used only to explain errors."""
    return len(data) >= 2 and data[0] == 0x30 and (data[1] < 0x80 or 0x81 <= data[1] <= 0x84)
