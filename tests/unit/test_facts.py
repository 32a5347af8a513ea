"""Parsers of server output, table-driven from real command outputs, and the disk decision."""

from __future__ import annotations

import json

import pytest

from gonka_tasks import facts

LSBLK_BLANK = json.dumps({"blockdevices": [
    {"name": "vdc", "path": "/dev/vdc", "type": "disk", "fstype": None, "uuid": None, "mountpoints": [None]}]})
LSBLK_PARTS = json.dumps({"blockdevices": [
    {"name": "vdc", "path": "/dev/vdc", "type": "disk", "fstype": None, "uuid": None, "mountpoints": [None],
     "children": [{"name": "vdc1", "path": "/dev/vdc1", "type": "part", "fstype": "xfs", "uuid": "u1",
                   "mountpoints": ["/data"]}]}]})
LSBLK_OLD = '{"blockdevices": [{"name": "vdc", "type": "disk", "fstype": "ext4", "uuid": "abc", "mountpoint": "/mnt/ssd"}]}'


def test_parse_lsblk_current_and_old_formats():
    d = facts.parse_lsblk(LSBLK_PARTS)[0]
    assert d.name == "vdc" and d.children[0].fstype == "xfs" and d.children[0].mountpoints == ["/data"]
    old = facts.parse_lsblk(LSBLK_OLD)[0]
    assert old.path == "/dev/vdc" and old.mountpoints == ["/mnt/ssd"] and old.uuid == "abc"


@pytest.mark.parametrize("bad", ["", "not json", "[]", '{"blockdevices": 3}', '{"blockdevices": [{"x": 1}]}'])
def test_parse_lsblk_rejects_garbage(bad):
    with pytest.raises(facts.FactError):
        facts.parse_lsblk(bad)


def test_blkid_export():
    out = "DEVNAME=/dev/vdc\nUUID=1234-abcd\nBLOCK_SIZE=4096\nTYPE=ext4\n"
    assert facts.parse_blkid_export(out) == {"DEVNAME": "/dev/vdc", "UUID": "1234-abcd", "BLOCK_SIZE": "4096",
                                             "TYPE": "ext4"}


def _facts(blkid: str = "", lsblk: str = LSBLK_BLANK, exists: int = 0, roots: str = "vda\n"):
    return facts.disk_facts(exists, blkid, lsblk, roots)


MP = "/mnt/ssd"
DISK_CASES = [
    # (name, facts, recorded uuid, adopt, action, words in reason)
    ("blank", _facts(), None, False, "format", "blank"),
    ("missing device", _facts(exists=1), None, False, "error", "does not exist"),
    ("system disk", _facts(roots="vdc\n"), None, False, "error", "root or boot"),
    ("partitions", _facts(lsblk=LSBLK_PARTS), None, False, "error", "partitions"),
    ("gpt", _facts(blkid="PTUUID=x\nPTTYPE=gpt\n"), None, False, "error", "gpt partition table"),
    ("xfs", _facts(blkid="UUID=u\nTYPE=xfs\n"), None, False, "error", "xfs filesystem"),
    ("foreign ext4", _facts(blkid="UUID=u\nTYPE=ext4\n"), None, False, "error", "did not create"),
    ("foreign ext4 other uuid", _facts(blkid="UUID=u\nTYPE=ext4\n"), "v", False, "error", "volume.txt has v"),
    ("our ext4", _facts(blkid="UUID=u\nTYPE=ext4\n"), "u", False, "keep", "volume.txt"),
    ("adopted ext4", _facts(blkid="UUID=u\nTYPE=ext4\n"), None, True, "keep", "ADOPT_DISK"),
    ("mounted elsewhere", _facts(blkid="UUID=u\nTYPE=ext4\n", lsblk=LSBLK_BLANK.replace("[null]", '["/data"]')),
     "u", False, "error", "mounted at /data"),
    ("ours mounted here", _facts(blkid="UUID=u\nTYPE=ext4\n", lsblk=LSBLK_BLANK.replace("[null]", '["/mnt/ssd"]')),
     "u", False, "keep", "ext4"),
    ("adopt never formats xfs", _facts(blkid="UUID=u\nTYPE=xfs\n"), None, True, "error", "xfs"),
]


@pytest.mark.parametrize("name,f,recorded,adopt,action,words", DISK_CASES, ids=[c[0] for c in DISK_CASES])
def test_decide_disk(name, f, recorded, adopt, action, words):
    d = facts.decide_disk(f, "/dev/vdc", MP, recorded, adopt)
    assert d.action == action
    assert words in d.reason


FSTAB = "# /etc/fstab\nUUID=root / ext4 errors=remount-ro 0 1\n\n/dev/old /mnt/ssd xfs defaults 0 0\n"


def test_fstab_with_entry_replaces_in_place_keeping_the_rest():
    new = facts.fstab_with_entry(FSTAB, "UUID=u /mnt/ssd ext4 defaults,nofail 0 2", MP)
    assert new.splitlines() == ["# /etc/fstab", "UUID=root / ext4 errors=remount-ro 0 1", "",
                                "UUID=u /mnt/ssd ext4 defaults,nofail 0 2"]
    assert facts.fstab_with_entry(new, "UUID=u /mnt/ssd ext4 defaults,nofail 0 2", MP) == new


def test_fstab_with_entry_appends_and_dedups():
    text = FSTAB + "/dev/x /mnt/ssd/ ext4 defaults 0 0\n"
    new = facts.fstab_with_entry(text, "L", MP)
    assert facts.fstab_entries_for(new, MP) == [] and new.count("\nL\n") == 1
    assert facts.fstab_with_entry("# only\n", "UUID=u /mnt/ssd ext4 defaults,nofail 0 2", MP).endswith("nofail 0 2\n")


def test_findmnt_keys_are_normalised():
    out = '{"filesystems": [{"target": "/mnt/ssd", "source": "/dev/vdc", "fstype": "ext4", "uuid": "u"}]}'
    assert facts.parse_findmnt(out) == [{"TARGET": "/mnt/ssd", "SOURCE": "/dev/vdc", "FSTYPE": "ext4", "UUID": "u"}]
    assert facts.parse_findmnt("") == []


PS_NDJSON = "\n".join(json.dumps(x) for x in [
    {"Name": "node", "Service": "node", "State": "running", "ExitCode": 0, "Publishers": []},
    {"Name": "join-mlnode-308-1", "Service": "mlnode-308", "State": "exited", "ExitCode": 1}])
PS_ARRAY = json.dumps([{"Name": "tmkms", "Service": "tmkms", "State": "running"}])


def test_compose_ps_both_formats():
    cs = facts.parse_compose_ps(PS_NDJSON)
    assert [(c.service, c.running, c.exit_code) for c in cs] == [("node", True, 0), ("mlnode-308", False, 1)]
    assert facts.parse_compose_ps(PS_ARRAY)[0].running
    assert facts.parse_compose_ps("") == []


def test_compose_services_skip_profiles():
    y = "services:\n  api: {image: a}\n  proxy-ssl:\n    image: b\n    profiles: [ssl]\n  node:\n    image: c\n"
    assert facts.compose_services(y) == ["api", "node"]


STATUS = {"jsonrpc": "2.0", "id": -1, "result": {
    "node_info": {"network": "gonka-mainnet"},
    "sync_info": {"latest_block_height": "1234", "catching_up": False},
    "validator_info": {"pub_key": {"type": "tendermint/PubKeyEd25519", "value": "AbC="}}}}


def test_rpc_status():
    s = facts.parse_rpc_status(json.dumps(STATUS))
    assert (s.network, s.height, s.catching_up, s.validator_pubkey) == ("gonka-mainnet", 1234, False, "AbC=")
    s2 = facts.parse_rpc_status(json.dumps(STATUS["result"] | {"validator_info": {}}))
    assert s2.validator_pubkey == ""


ADDR = "gonka1xrxsnuyewsvgxe86yz3t6twzmejrxldekkclqy"
WORDS = ("abandon ability able about above absent absorb abstract absurd abuse access accident "
         "account accuse achieve acid acoustic acquire across act action actor actress actual")
KEYS_ADD_OUT = f"""Enter keyring passphrase (attempt 1/3):
Re-enter keyring passphrase:

- address: {ADDR}
  name: node-a
  pubkey: '{{"@type":"/cosmos.crypto.secp256k1.PubKey","key":"A1b2"}}'
  type: local


**Important** write this mnemonic phrase in a safe place.
It is the only way to recover your account if you ever forget your password.

{WORDS}
"""


def test_keys_add_output():
    k = facts.parse_keys_add(KEYS_ADD_OUT)
    assert k.address == ADDR and k.mnemonic == WORDS
    with pytest.raises(facts.FactError):
        facts.parse_keys_add("Error: aborted")
    assert facts.parse_address(f"{ADDR}\n") == ADDR
    assert facts.parse_mnemonic(f"# c\naddress: {ADDR}\n{WORDS}\n") == WORDS
