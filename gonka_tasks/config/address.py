"""Cold (account) address derivation for Gonka, the standard Cosmos way.

A Gonka account address is ``bech32("gonka", ripemd160(sha256(pubkey)))`` where ``pubkey`` is the
33-byte compressed secp256k1 public key that operators pass around base64-encoded
(``ACCOUNT_PUBKEY``). Bech32 comes from the `bech32` package (the reference implementation) and
RIPEMD-160 from pycryptodome: OpenSSL 3 builds of ``hashlib`` often lack RIPEMD-160.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import bech32 as _bech32
from Crypto.Hash import RIPEMD160

__all__ = [
    "Bech32Error",
    "bech32_decode",
    "bech32_encode",
    "cold_address",
    "convert_bits",
    "decode_address",
    "hash160",
    "pubkey_bytes",
    "ripemd160",
]

DEFAULT_HRP = "gonka"

# ---------------------------------------------------------------------------------------------
# public key


def pubkey_bytes(b64: str) -> bytes:
    """Decode and check a base64 compressed secp256k1 public key (33 bytes, prefix 0x02/0x03).

    Raises ValueError with a message naming what is wrong, so callers can show it as is.
    """
    if not isinstance(b64, str):
        raise ValueError(f"account public key must be a base64 string, got {type(b64).__name__}")
    text = b64.strip()
    if not text:
        raise ValueError("account public key is empty")
    if text.startswith("{"):
        # `inferenced keys show` prints the JSON form; people paste it by mistake.
        raise ValueError('account public key looks like JSON; pass only the base64 value of its "key" field')
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"account public key is not valid base64: {exc}") from None
    if len(raw) != 33:
        raise ValueError(
            f"account public key must decode to 33 bytes (compressed secp256k1), got {len(raw)} bytes"
        )
    if raw[0] not in (0x02, 0x03):
        raise ValueError(
            f"account public key must start with byte 0x02 or 0x03 (compressed secp256k1), got 0x{raw[0]:02x}"
        )
    return raw


def ripemd160(data: bytes) -> bytes:
    return RIPEMD160.new(data).digest()


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256: the 20-byte account id Cosmos addresses encode."""
    return ripemd160(hashlib.sha256(data).digest())


def cold_address(pubkey_b64: str, hrp: str = DEFAULT_HRP) -> str:
    """Return the bech32 account address (``gonka1...``) of a base64 compressed secp256k1 key."""
    return bech32_encode(hrp, convert_bits(hash160(pubkey_bytes(pubkey_b64)), 8, 5, pad=True))


class Bech32Error(ValueError):
    """A string that is not a valid bech32 address."""


def convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool = True) -> list[int]:
    out = _bech32.convertbits(list(data), from_bits, to_bits, pad)
    if out is None:
        raise Bech32Error(f"cannot regroup {from_bits}-bit values into {to_bits}-bit values")
    return out


def bech32_encode(hrp: str, data: list[int]) -> str:
    return _bech32.bech32_encode(hrp, data)


def bech32_decode(text: str) -> tuple[str, list[int]]:
    """(hrp, 5-bit data without the checksum) of a bech32 string; Bech32Error when it is not one."""
    if not isinstance(text, str) or not text:
        raise Bech32Error("empty address")
    hrp, data = _bech32.bech32_decode(text)
    if hrp is None:
        raise Bech32Error("not a valid bech32 string (characters, case, separator, length or checksum)")
    return hrp, data


def decode_address(address: str, hrp: str | None = DEFAULT_HRP) -> bytes:
    """Return the 20-byte account id of a bech32 address, checking the prefix when ``hrp`` is given."""
    got_hrp, data = bech32_decode(address)
    if hrp is not None and got_hrp != hrp:
        raise Bech32Error(f"address prefix is {got_hrp!r}, expected {hrp!r}")
    raw = bytes(convert_bits(data, 5, 8, pad=False))
    if len(raw) != 20:
        raise Bech32Error(f"address decodes to {len(raw)} bytes, expected 20")
    return raw
