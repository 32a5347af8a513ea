"""Keys of the simulated chain, the Cosmos SDK way, on well-kept libraries.

A key is BIP-39 mnemonic (`mnemonic`) -> seed -> BIP-32 child at the SDK's default HD path
m/44'/118'/0'/0/0 (`bip32`, on libsecp256k1 through `coincurve`) -> 33-byte compressed secp256k1
public key -> account id ripemd160(sha256(pubkey)) (pycryptodome) -> bech32 address (`bech32`).
What is this project's own: the Go wording of bech32 errors, in the order btcutil's
`bech32.Decode` checks (the SDK's AccAddressFromBech32 prints them).
"""

from __future__ import annotations

import base64
import hashlib

import bech32 as _bech32
import coincurve
from bip32 import BIP32
from Crypto.Hash import RIPEMD160
from mnemonic import Mnemonic

HD_PATH = "m/44'/118'/0'/0/0"  # the SDK's default (coin type 118); inference-chain sets no other
_WORDS = Mnemonic("english")


def new_mnemonic() -> str:
    """24 words, as `keys add` prints them (256 bits of entropy)."""
    return _WORDS.generate(strength=256)


def mnemonic_valid(phrase: str) -> bool:
    try:
        return _WORDS.check(" ".join(phrase.split()))
    except (ValueError, LookupError):
        return False


def private_key(phrase: str, passphrase: str = "") -> int:
    seed = Mnemonic.to_seed(" ".join(phrase.split()), passphrase)
    return int.from_bytes(BIP32.from_seed(seed).get_privkey_from_path(HD_PATH), "big")


def compressed_pubkey(priv: int) -> bytes:
    return coincurve.PrivateKey(priv.to_bytes(32, "big")).public_key.format(compressed=True)


def account_id(pubkey: bytes) -> bytes:
    return RIPEMD160.new(hashlib.sha256(pubkey).digest()).digest()


def bech32(hrp: str, payload: bytes) -> str:
    return _bech32.bech32_encode(hrp, _bech32.convertbits(payload, 8, 5))


def address(pubkey: bytes, hrp: str = "gonka") -> str:
    return bech32(hrp, account_id(pubkey))


def bech32_decode(text: str) -> tuple[str, bytes]:
    """(hrp, payload) of a bech32 string; ValueError worded like the Go CLI's when invalid.

    The checks run in the order of btcutil's bech32.Decode: length, characters, case, separator;
    the library then decodes (charset and checksum).
    """
    if len(text) < 8 or len(text) > 1023:
        raise ValueError(f"decoding bech32 failed: invalid bech32 string length {len(text)}")
    bad = next((c for c in text if not 33 <= ord(c) <= 126), None)
    if bad is not None:
        raise ValueError(f"decoding bech32 failed: invalid character in string: '{bad}'")
    if text.lower() != text and text.upper() != text:
        raise ValueError("decoding bech32 failed: string not all lowercase or all uppercase")
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError(f"decoding bech32 failed: invalid separator index {pos}")
    hrp, data = _bech32.bech32_decode(text.lower())
    if hrp is None:
        charset_ok = all(c in _bech32.CHARSET for c in text.lower()[pos + 1:])
        raise ValueError("decoding bech32 failed: " + ("invalid checksum" if charset_ok else
                                                        "invalid character not part of charset"))
    payload = _bech32.convertbits(data, 5, 8, False)
    if payload is None:
        raise ValueError("decoding bech32 failed: invalid padding")
    return hrp, bytes(payload)


def address_from_b64(pubkey_b64: str, hrp: str = "gonka") -> str:
    """Address of a base64 pubkey; errors worded like the Go CLI's."""
    if not pubkey_b64.strip():
        raise ValueError("public key cannot be empty")
    try:
        raw = base64.b64decode(pubkey_b64.strip(), validate=True)
    except ValueError:
        bad = next((i for i, c in enumerate(pubkey_b64) if c not in
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="), len(pubkey_b64))
        raise ValueError(f"failed to decode public key: illegal base64 data at input byte {bad}") from None
    if not raw:
        raise ValueError("decoded public key is empty")
    return address(raw, hrp)
