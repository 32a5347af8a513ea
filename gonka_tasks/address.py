"""Cold (account) address derivation for Gonka, the standard Cosmos way.

A Gonka account address is ``bech32("gonka", ripemd160(sha256(pubkey)))`` where ``pubkey`` is the
33-byte compressed secp256k1 public key that operators pass around base64-encoded
(``ACCOUNT_PUBKEY``). Everything here is pure standard library: OpenSSL 3 builds of ``hashlib``
often lack RIPEMD-160, so a small pure-Python implementation is used as a fallback.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct

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
    "ripemd160_py",
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


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256: the 20-byte account id Cosmos addresses encode."""
    return ripemd160(hashlib.sha256(data).digest())


def cold_address(pubkey_b64: str, hrp: str = DEFAULT_HRP) -> str:
    """Return the bech32 account address (``gonka1...``) of a base64 compressed secp256k1 key."""
    return bech32_encode(hrp, convert_bits(hash160(pubkey_bytes(pubkey_b64)), 8, 5, pad=True))


# ---------------------------------------------------------------------------------------------
# RIPEMD-160


def ripemd160(data: bytes) -> bytes:
    """RIPEMD-160 digest, from hashlib when OpenSSL offers it, else the pure-Python one."""
    try:
        return hashlib.new("ripemd160", data).digest()
    except (ValueError, TypeError):  # unsupported hash type on OpenSSL 3 without the legacy provider
        return ripemd160_py(data)


# Message word order and rotation amounts per step, left and right lines (RIPEMD-160 spec).
_R_LEFT = (
    list(range(16))
    + [7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8]
    + [3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12]
    + [1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2]
    + [4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13]
)
_R_RIGHT = (
    [5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12]
    + [6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2]
    + [15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13]
    + [8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14]
    + [12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11]
)
_S_LEFT = (
    [11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8]
    + [7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12]
    + [11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5]
    + [11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12]
    + [9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6]
)
_S_RIGHT = (
    [8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6]
    + [9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11]
    + [9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5]
    + [15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8]
    + [8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11]
)
_K_LEFT = (0x00000000, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E)
_K_RIGHT = (0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0x00000000)
_MASK = 0xFFFFFFFF


def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _MASK


def _f(round_no: int, x: int, y: int, z: int) -> int:
    """The five boolean functions, one per round of 16 steps."""
    if round_no == 0:
        return x ^ y ^ z
    if round_no == 1:
        return (x & y) | (~x & z)
    if round_no == 2:
        return (x | ~y & _MASK) ^ z
    if round_no == 3:
        return (x & z) | (y & ~z)
    return x ^ (y | ~z & _MASK)


def _compress(state: list[int], block: bytes) -> None:
    words = struct.unpack("<16I", block)
    al, bl, cl, dl, el = state
    ar, br, cr, dr, er = state
    for j in range(80):
        rnd = j >> 4
        t = _rol((al + _f(rnd, bl, cl, dl) + words[_R_LEFT[j]] + _K_LEFT[rnd]) & _MASK, _S_LEFT[j])
        t = (t + el) & _MASK
        al, el, dl, cl, bl = el, dl, _rol(cl, 10), bl, t
        # The right line runs the boolean functions in reverse order.
        t = _rol((ar + _f(4 - rnd, br, cr, dr) + words[_R_RIGHT[j]] + _K_RIGHT[rnd]) & _MASK, _S_RIGHT[j])
        t = (t + er) & _MASK
        ar, er, dr, cr, br = er, dr, _rol(cr, 10), br, t
    h0, h1, h2, h3, h4 = state
    state[:] = [
        (h1 + cl + dr) & _MASK,
        (h2 + dl + er) & _MASK,
        (h3 + el + ar) & _MASK,
        (h4 + al + br) & _MASK,
        (h0 + bl + cr) & _MASK,
    ]


def ripemd160_py(data: bytes) -> bytes:
    """Pure-Python RIPEMD-160 (Dobbertin, Bosselaers, Preneel, 1996). Slow but only hashes 32 bytes here."""
    state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    bit_len = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    # MD4-style padding: 0x80, zeros to 56 mod 64, then the bit length little-endian.
    padded = bytes(data) + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", bit_len)
    for off in range(0, len(padded), 64):
        _compress(state, padded[off : off + 64])
    return struct.pack("<5I", *state)


# ---------------------------------------------------------------------------------------------
# Bech32 (BIP-173)

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REV = {c: i for i, c in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_BECH32_CONST = 1


class Bech32Error(ValueError):
    """A string is not valid bech32."""


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GENERATOR[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool = True) -> list[int]:
    """Regroup a sequence of ``from_bits``-bit values into ``to_bits``-bit values (BIP-173 convertbits)."""
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        if value < 0 or value >> from_bits:
            raise Bech32Error(f"value {value} does not fit in {from_bits} bits")
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or ((acc << (to_bits - bits)) & maxv):
        raise Bech32Error("invalid padding in data part")
    return out


def bech32_encode(hrp: str, data: list[int]) -> str:
    """Encode a human-readable part and 5-bit values as a lowercase bech32 string."""
    if not hrp or any(ord(c) < 33 or ord(c) > 126 for c in hrp):
        raise Bech32Error(f"invalid human-readable part {hrp!r}")
    if any(d < 0 or d > 31 for d in data):
        raise Bech32Error("data values must be 5-bit")
    hrp = hrp.lower()
    values = _hrp_expand(hrp) + list(data)
    mod = _polymod(values + [0] * 6) ^ _BECH32_CONST
    checksum = [(mod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in list(data) + checksum)


def bech32_decode(text: str, max_length: int = 90) -> tuple[str, list[int]]:
    """Decode and verify a bech32 string; return ``(hrp, 5-bit data without checksum)``.

    Raises Bech32Error naming the problem (mixed case, bad character, bad checksum, ...).
    """
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise Bech32Error("bech32 string has characters outside US-ASCII 33..126")
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("bech32 string mixes upper and lower case")
    if len(text) > max_length:
        raise Bech32Error(f"bech32 string is longer than {max_length} characters")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1:
        raise Bech32Error("bech32 string has no human-readable part")
    if pos + 7 > len(text):
        raise Bech32Error("bech32 checksum is too short")
    hrp, rest = text[:pos], text[pos + 1 :]
    try:
        data = [_CHARSET_REV[c] for c in rest]
    except KeyError as exc:
        raise Bech32Error(f"invalid bech32 character {exc.args[0]!r}") from None
    if _polymod(_hrp_expand(hrp) + data) != _BECH32_CONST:
        raise Bech32Error("bech32 checksum does not match")
    return hrp, data[:-6]


def decode_address(address: str, hrp: str | None = DEFAULT_HRP) -> bytes:
    """Return the 20-byte account id of a bech32 address, checking the prefix when ``hrp`` is given."""
    got_hrp, data = bech32_decode(address)
    if hrp is not None and got_hrp != hrp:
        raise Bech32Error(f"address prefix is {got_hrp!r}, expected {hrp!r}")
    raw = bytes(convert_bits(data, 5, 8, pad=False))
    if len(raw) != 20:
        raise Bech32Error(f"address decodes to {len(raw)} bytes, expected 20")
    return raw
