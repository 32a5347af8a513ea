"""Cold address derivation: RIPEMD-160 (pycryptodome), bech32 (the reference package) and the Cosmos
address recipe, checked against published vectors."""

from __future__ import annotations

import base64

import pytest

from gonka_tasks.config.address import (
    Bech32Error,
    bech32_decode,
    bech32_encode,
    cold_address,
    convert_bits,
    decode_address,
    hash160,
    pubkey_bytes,
    ripemd160,
)

# Test vectors from the RIPEMD-160 paper's reference page.
RIPEMD_VECTORS = [
    (b"", "9c1185a5c5e9fc54612808977ee8f548b2258d31"),
    (b"a", "0bdc9d2d256b3ee9daae347be6f4dc835a467ffe"),
    (b"abc", "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"),
    (b"message digest", "5d0689ef49d2fae572b881b123a85ffa21595f36"),
    (b"abcdefghijklmnopqrstuvwxyz", "f71c27109c692c1b56bbdceb5b9d2865b3708dbc"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "12a053384a9c0c88e405a06c27dcf49ada62eb2b"),
    (
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "b0e20b6e3116640286ed3a87a5713079b21f5189",
    ),
    (b"1234567890" * 8, "9b752e45573d4b39f4dbd3323cab82bf63326bfb"),
]


@pytest.mark.parametrize(("msg", "digest"), RIPEMD_VECTORS)
def test_ripemd160_vectors(msg, digest):
    assert ripemd160(msg).hex() == digest


# BIP-173 valid and invalid bech32 strings.
BECH32_VALID = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11" + "q" * 82 + "c8247j",  # 90 characters: the maximum
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]
BECH32_INVALID = [
    "\x201nwldj5",  # hrp character out of range
    "\x7f1axkwrx",
    "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
    "pzry9x0s0muk",  # no separator
    "1pzry9x0s0muk",  # empty hrp
    "x1b4n0q5v",  # invalid data character
    "li1dgmt3",  # checksum too short
    "de1lg7wt\xff",
    "A1G7SGD8",  # checksum computed with uppercase hrp
    "10a06t8",
    "1qzzfhee",
    "a12UEL5L",  # mixed case
]


@pytest.mark.parametrize("text", BECH32_VALID)
def test_bech32_valid_strings_roundtrip(text):
    hrp, data = bech32_decode(text)
    assert bech32_encode(hrp, data) == text.lower()


@pytest.mark.parametrize("text", BECH32_INVALID)
def test_bech32_invalid_strings_rejected(text):
    with pytest.raises(Bech32Error):
        bech32_decode(text)


def test_bech32_segwit_vector_decodes_to_hash160_of_generator():
    # bc1qw508... is BIP-173's P2WPKH example: program = hash160 of the secp256k1 generator point.
    g = bytes.fromhex("0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798")
    hrp, data = bech32_decode("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")
    assert hrp == "bc" and data[0] == 0
    program = bytes(convert_bits(data[1:], 5, 8, pad=False))
    assert program == hash160(g) == bytes.fromhex("751e76e8199196d454941c45d1b3a323f1433bd6")


# Published key/address pairs from Cosmos chains (`<chain>d keys add` outputs).
COSMOS_VECTORS = [
    ("A0N73o8ke8bp/7c7PgsRjHGddjHvk0USHwq+RDzwwE0t", "cheqd", "cheqd1vjuh4fjkcq0c02qullrt27z822gpn06sah2elh"),
    (
        "A8ti6bqt4pfpLtq+fJMFUyNVijxXO6VmSJGF01NX9/xF",
        "archway",
        "archway13pfpsmgxq8fkxt49v2zzct4f89keh99wxr8pa9",
    ),
    ("Al92dlOeLpuAiOUSIaJapkIveiwlhlEdz/O5CrniMdwH", "gm", "gm18k57hn42ujcccyn0n5v7r6ydpacycn2wkt7uh9"),
]


@pytest.mark.parametrize(("key", "hrp", "expected"), COSMOS_VECTORS)
def test_cold_address_matches_published_cosmos_pairs(key, hrp, expected):
    assert cold_address(key, hrp) == expected


def test_cold_address_gonka_prefix_and_roundtrip():
    g = base64.b64encode(
        bytes.fromhex("0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798")
    ).decode()
    a = cold_address(g)
    assert a == "gonka1w508d6qejxtdg4y5r3zarvary0c5xw7k2gsyg6"
    assert decode_address(a) == bytes.fromhex("751e76e8199196d454941c45d1b3a323f1433bd6")
    with pytest.raises(Bech32Error, match="prefix"):
        decode_address(a, hrp="cosmos")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("not base64!!", "not valid base64"),
        (base64.b64encode(b"\x02" * 32).decode(), "33 bytes"),
        (base64.b64encode(b"\x04" + b"\x01" * 32).decode(), "0x02 or 0x03"),
        ('{"@type":"/cosmos.crypto.secp256k1.PubKey","key":"A0N7"}', "JSON"),
    ],
)
def test_pubkey_bytes_rejects_bad_keys_with_clear_message(value, message):
    with pytest.raises(ValueError, match=message):
        pubkey_bytes(value)


def test_pubkey_bytes_accepts_compressed_key_with_whitespace():
    raw = b"\x03" + bytes(range(32))
    assert pubkey_bytes("  " + base64.b64encode(raw).decode() + "\n") == raw
