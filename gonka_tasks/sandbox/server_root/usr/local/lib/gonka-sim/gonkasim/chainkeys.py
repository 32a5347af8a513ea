"""Account keys the way a Cosmos chain sees them: secp256k1 keys, bech32 addresses, mnemonics.

The public keys and addresses are real (compressed secp256k1 points; bech32 of
ripemd160(sha256(pubkey))), so the runner's address derivation agrees with them. The mnemonic
is BIP39-shaped (24 words, 256-bit entropy plus an 8-bit checksum) but over a word list made up
here, and the private key comes from a hash of the phrase instead of BIP32: a sandbox mnemonic
cannot be imported into a real wallet, and never needs to be.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import struct

# ----------------------------------------------------------------------------- secp256k1

P = 2**256 - 2**32 - 977
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
G = (0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
     0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8)


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0] and (a[1] + b[1]) % P == 0:
        return None
    if a == b:
        lam = 3 * a[0] * a[0] * pow(2 * a[1], -1, P) % P
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], -1, P) % P
    x = (lam * lam - a[0] - b[0]) % P
    return x, (lam * (a[0] - x) - a[1]) % P


def point_mul(k: int, point=G):
    result, addend = None, point
    while k:
        if k & 1:
            result = _add(result, addend)
        addend = _add(addend, addend)
        k >>= 1
    return result


def compressed_pubkey(priv: int) -> bytes:
    x, y = point_mul(priv)
    return bytes([2 + (y & 1)]) + x.to_bytes(32, "big")


# ----------------------------------------------------------------------------- hashes, bech32

def ripemd160(data: bytes) -> bytes:
    try:
        return hashlib.new("ripemd160", data).digest()
    except (ValueError, TypeError):  # OpenSSL 3 without the legacy provider
        return _ripemd160_py(data)


_RL = [list(range(16)), [7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8],
       [3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12], [1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2],
       [4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13]]
_RR = [[5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12], [6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2],
       [15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13], [8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14],
       [12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11]]
_SL = [[11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8], [7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12],
       [11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5], [11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12],
       [9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6]]
_SR = [[8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6], [9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11],
       [9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5], [15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8],
       [8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11]]
_KL = (0, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E)
_KR = (0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0)
_M = 0xFFFFFFFF


def _rol(x, n):
    return ((x << n) | (x >> (32 - n))) & _M


def _fn(r, x, y, z):
    return (x ^ y ^ z, (x & y) | (~x & z), (x | ~y & _M) ^ z, (x & z) | (y & ~z), x ^ (y | ~z & _M))[r]


def _ripemd160_py(data: bytes) -> bytes:
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    msg = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", 8 * len(data))
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off:off + 64])
        al, bl, cl, dl, el = h
        ar, br, cr, dr, er = h
        for j in range(80):
            r, i = divmod(j, 16)
            t = (_rol((al + _fn(r, bl, cl, dl) + x[_RL[r][i]] + _KL[r]) & _M, _SL[r][i]) + el) & _M
            al, el, dl, cl, bl = el, dl, _rol(cl, 10), bl, t
            t = (_rol((ar + _fn(4 - r, br, cr, dr) + x[_RR[r][i]] + _KR[r]) & _M, _SR[r][i]) + er) & _M
            ar, er, dr, cr, br = er, dr, _rol(cr, 10), br, t
        h = [(h[1] + cl + dr) & _M, (h[2] + dl + er) & _M, (h[3] + el + ar) & _M, (h[4] + al + br) & _M,
             (h[0] + bl + cr) & _M]
    return struct.pack("<5I", *h)


_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _polymod(values):
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp):
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert(data, frm, to, pad=True):
    acc = bits = 0
    out = []
    for v in data:
        acc = (acc << frm) | v
        bits += frm
        while bits >= to:
            bits -= to
            out.append((acc >> bits) & ((1 << to) - 1))
    if pad and bits:
        out.append((acc << (to - bits)) & ((1 << to) - 1))
    elif not pad and (bits >= frm or (acc << (to - bits)) & ((1 << to) - 1)):
        raise ValueError("invalid padding")
    return out


def bech32(hrp: str, payload: bytes) -> str:
    data = _convert(payload, 8, 5)
    mod = _polymod(_hrp_expand(hrp) + data + [0] * 6) ^ 1
    return hrp + "1" + "".join(_CHARSET[d] for d in data + [(mod >> 5 * (5 - i)) & 31 for i in range(6)])


def bech32_decode(text: str) -> tuple[str, bytes]:
    """(hrp, payload) of a bech32 string; ValueError with Go-like wording when invalid.

    The checks run in the order of btcutil's bech32.Decode (used by the SDK's AccAddressFromBech32):
    length, characters, case, separator, charset, checksum.
    """
    if len(text) < 8 or len(text) > 1023:
        raise ValueError(f"decoding bech32 failed: invalid bech32 string length {len(text)}")
    bad = next((c for c in text if not 33 <= ord(c) <= 126), None)
    if bad is not None:
        raise ValueError(f"decoding bech32 failed: invalid character in string: '{bad}'")
    if text.lower() != text and text.upper() != text:
        raise ValueError("decoding bech32 failed: string not all lowercase or all uppercase")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError(f"decoding bech32 failed: invalid separator index {pos}")
    hrp, rest = text[:pos], text[pos + 1:]
    try:
        data = [_CHARSET.index(c) for c in rest]
    except ValueError:
        raise ValueError("decoding bech32 failed: invalid character not part of charset") from None
    if _polymod(_hrp_expand(hrp) + data) != 1:
        raise ValueError("decoding bech32 failed: invalid checksum")
    return hrp, bytes(_convert(data[:-6], 5, 8, pad=False))


def account_id(pubkey: bytes) -> bytes:
    return ripemd160(hashlib.sha256(pubkey).digest())


def address(pubkey: bytes, hrp: str = "gonka") -> str:
    return bech32(hrp, account_id(pubkey))


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


# ----------------------------------------------------------------------------- mnemonic

_ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
           "br", "cl", "dr", "fl", "gr", "pl", "sk", "sl", "sp", "st", "tr", "sh", "ch", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "oo"]
_CODAS = ["", "n", "r", "l", "m", "s", "t", "k"]


def _build_words() -> list[str]:
    """2048 distinct pronounceable words, always the same (syllable, then a second one)."""
    words: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(words) < 2048:
        a, b = divmod(i, len(_ONSETS) * len(_VOWELS))
        o1, v1 = divmod(a % (len(_ONSETS) * len(_VOWELS)), len(_VOWELS))
        o2, v2 = divmod(b, len(_VOWELS))
        word = _ONSETS[o1] + _VOWELS[v1] + _ONSETS[o2][:1] + _VOWELS[v2][:1] + _CODAS[(i * 7) % len(_CODAS)]
        i += 1
        if word not in seen and 4 <= len(word) <= 8:
            seen.add(word)
            words.append(word)
    return words


WORDS = _build_words()
_INDEX = {w: i for i, w in enumerate(WORDS)}


def entropy_to_mnemonic(entropy: bytes) -> str:
    """BIP39 layout: entropy bits + sha256 checksum bits, 11 bits per word."""
    bits = len(entropy) * 8
    cs = bits // 32
    num = int.from_bytes(entropy, "big") << cs | (hashlib.sha256(entropy).digest()[0] >> (8 - cs))
    count = (bits + cs) // 11
    return " ".join(WORDS[(num >> (11 * (count - 1 - i))) & 2047] for i in range(count))


def new_mnemonic() -> str:
    return entropy_to_mnemonic(secrets.token_bytes(32))


def mnemonic_valid(phrase: str) -> bool:
    words = phrase.split()
    if len(words) not in (12, 15, 18, 21, 24) or any(w not in _INDEX for w in words):
        return False
    num = 0
    for w in words:
        num = num << 11 | _INDEX[w]
    total = len(words) * 11
    cs = total // 33
    entropy = (num >> cs).to_bytes((total - cs) // 8, "big")
    return entropy_to_mnemonic(entropy) == " ".join(words)


def private_key(phrase: str, passphrase: str = "") -> int:
    seed = hashlib.pbkdf2_hmac("sha512", " ".join(phrase.split()).encode(), b"mnemonic" + passphrase.encode(), 2048)
    k = int.from_bytes(hashlib.sha256(seed + b"m/44'/118'/0'/0/0").digest(), "big") % N
    return k or 1
