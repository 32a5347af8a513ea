"""Parsers of server output, table-driven from real command outputs, and the disk decision."""

from __future__ import annotations

import json
import os

import pytest

from gonka_tasks import facts
from tests.helpers import output

LSBLK_BLANK = output("lsblk-blank.json")
LSBLK_PARTS = output("lsblk-partitions.json")
LSBLK_OLD = output("lsblk-mountpoint-2.33.json")  # util-linux before 2.37: one mountpoint
LSBLK_H200 = output("lsblk-h200-ubuntu24.json")  # a real GPU server


def test_parse_lsblk_of_a_real_gpu_server():
    disks = {d.name: d for d in facts.parse_lsblk(LSBLK_H200)}
    assert sorted(disks) == ["vda", "vdb", "zram0"]
    assert disks["vda"].mountpoints == ["/"] and disks["vda"].type == "disk" and disks["vda"].fstype is None


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


def _facts(blkid: str = "", lsblk: str = LSBLK_BLANK, exists: int = 0, roots: str = "disk / vda\ndisk /boot vda\nDONE\n"):
    return facts.disk_facts(exists, blkid, lsblk, roots)


MP = "/mnt/ssd"
DISK_CASES = [
    # (name, facts, recorded uuid, adopt, action, words in reason)
    ("blank", _facts(), None, False, "format", "blank"),
    ("missing device", _facts(exists=1), None, False, "error", "does not exist"),
    ("system disk", _facts(roots="disk / vdc\nDONE\n"), None, False, "error", "root or boot"),
    ("system disk under LVM and RAID", _facts(roots="disk / sda\ndisk / vdc\nDONE\n"), None, False, "error",
     "root or boot"),
    ("root on overlay or ZFS", _facts(roots="nodev / rpool/ROOT/ubuntu\nDONE\n"), None, False, "format", "blank"),
    ("system disk unknown", _facts(roots="unknown / /dev/mapper/x\nDONE\n"), None, False, "error", "cannot tell"),
    ("system disk probe cut short", _facts(roots="disk / vda\n"), None, False, "error", "cannot tell"),
    ("system disk probe garbage", _facts(roots="└─vda disk\nDONE\n"), None, False, "error", "cannot tell"),
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


def test_root_disks_probe_reads_real_lsblk_on_a_real_shell(tmp_path):
    """The probe runs as is in sh; stand-ins for findmnt/lsblk print what a server with / on an LVM volume
    of a partition prints (lsblk -r: no tree drawing, which the old `lsblk -s` parse tripped on)."""
    import subprocess  # noqa: PLC0415

    (tmp_path / "findmnt").write_text('#!/bin/sh\ncase "$*" in *" /") echo /dev/mapper/vg-root;; '
                                      '*" /boot") echo /dev/vda1;; *) exit 1;; esac\n')
    (tmp_path / "lsblk").write_text('#!/bin/sh\ncase "$*" in *-r*) ;; *) exit 9;; esac\n'
                                    'case "$*" in *vg-root) printf "vg-root lvm\\nvda2 part\\nvda disk\\n";; '
                                    '*vda1) printf "vda1 part\\nvda disk\\n";; esac\n')
    for f in ("findmnt", "lsblk"):
        (tmp_path / f).chmod(0o755)
    r = subprocess.run(["sh", "-c", facts.ROOT_DISKS_PROBE], capture_output=True, text=True,
                       env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert facts.parse_root_disks(r.stdout) == ({"vda"}, []), r.stdout


MPROBE = "{real}\n__GD_MP__\n{kind}\n__GD_MP__\n{listing}"
MOUNT_CASES = [
    # (name, mount point, probe output, mounted, decision, words)
    ("missing", "/mnt/ssd", MPROBE.format(real="/mnt/ssd", kind="missing", listing=""), [], True, "does not exist"),
    ("empty dir", "/mnt/ssd", MPROBE.format(real="/mnt/ssd", kind="dir", listing="__GD_MP__\n"), [], True, "empty"),
    ("not empty", "/mnt/ssd", MPROBE.format(real="/mnt/ssd", kind="dir", listing="a\nb\n__GD_MP__\n"), [], False,
     "not empty (a, b)"),
    ("listing failed", "/mnt/ssd", MPROBE.format(real="/mnt/ssd", kind="dir", listing=""), [], False, "cannot list"),
    ("symlink to /etc", "/mnt/ssd", MPROBE.format(real="/etc", kind="symlink", listing="__GD_MP__\n"), [], False,
     "system directory /etc"),
    ("symlink elsewhere", "/mnt/ssd", MPROBE.format(real="/data/x", kind="symlink", listing="__GD_MP__\n"), [],
     False, "resolves to /data/x"),
    ("parent symlinked into /usr", "/mnt/ssd", MPROBE.format(real="/usr/ssd", kind="missing", listing=""), [],
     False, "/usr"),
    ("a file", "/mnt/ssd", MPROBE.format(real="/mnt/ssd", kind="other", listing=""), [], False, "not a directory"),
    ("no answer", "/mnt/ssd", "", [], False, "cannot read"),
    ("ours", "/mnt/ssd", MPROBE.format(real="/mnt/ssd", kind="dir", listing="lost+found\n__GD_MP__\n"),
     [{"SOURCE": "/dev/vdc", "UUID": "u"}], True, "already"),
    ("ours by uuid", "/mnt/ssd", MPROBE.format(real="/mnt/ssd", kind="dir", listing="x\n__GD_MP__\n"),
     [{"SOURCE": "/dev/disk/by-uuid/u", "UUID": "u"}], True, "already"),
    ("someone else's mount", "/mnt/ssd", MPROBE.format(real="/mnt/ssd", kind="dir", listing="__GD_MP__\n"),
     [{"SOURCE": "/dev/sdb1", "UUID": "x", "FSTYPE": "xfs"}], False, "mount point of /dev/sdb1"),
]


@pytest.mark.parametrize("name,mp,out,mounted,ok,words", MOUNT_CASES, ids=[c[0] for c in MOUNT_CASES])
def test_decide_mount_point(name, mp, out, mounted, ok, words):
    d = facts.decide_mount_point(mp, out, mounted, "/dev/vdc", {"u"})
    assert d.ok is ok and words in d.reason, d


def test_mount_point_probe_on_a_real_shell(tmp_path):
    import subprocess  # noqa: PLC0415

    def decide(path):
        r = subprocess.run(["sh", "-c", facts.mount_point_probe(str(path))], capture_output=True, text=True)
        return facts.decide_mount_point(str(path), r.stdout, [], "/dev/vdc", set())
    assert decide(tmp_path / "new").ok
    (tmp_path / "empty").mkdir()
    assert decide(tmp_path / "empty").ok
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    assert "not empty (f)" in decide(tmp_path / "full").reason
    (tmp_path / "link").symlink_to("/etc")
    assert "system directory /etc" in decide(tmp_path / "link").reason
    (tmp_path / "weird name 'x'").mkdir()
    assert decide(tmp_path / "weird name 'x'").ok


FSTAB = output("fstab.txt")


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


PS_NDJSON = output("compose-ps.ndjson")
PS_ARRAY = output("compose-ps-array.json")


def test_compose_ps_both_formats():
    cs = facts.parse_compose_ps(PS_NDJSON)
    assert [(c.service, c.running, c.exit_code) for c in cs] == [("node", True, 0), ("mlnode-308", False, 1)]
    assert facts.parse_compose_ps(PS_ARRAY)[0].running
    assert facts.parse_compose_ps("") == []


def test_compose_services_skip_profiles():
    y = "services:\n  api: {image: a}\n  proxy-ssl:\n    image: b\n    profiles: [ssl]\n  node:\n    image: c\n"
    assert facts.compose_services(y) == ["api", "node"]


STATUS = json.loads(output("rpc-status.json"))


def test_rpc_status():
    s = facts.parse_rpc_status(json.dumps(STATUS))
    assert (s.network, s.height, s.catching_up, s.validator_pubkey) == ("gonka-mainnet", 1234, False, "AbC=")
    s2 = facts.parse_rpc_status(json.dumps(STATUS["result"] | {"validator_info": {}}))
    assert s2.validator_pubkey == ""


ADDR = "gonka1xrxsnuyewsvgxe86yz3t6twzmejrxldekkclqy"
WORDS = ("abandon ability able about above absent absorb abstract absurd abuse access accident "
         "account accuse achieve acid acoustic acquire across act action actor actress actual")
KEYS_ADD_OUT = output("keys-add.txt")  # inferenced keys add, both streams


def test_keys_add_output():
    k = facts.parse_keys_add(KEYS_ADD_OUT)
    assert k.address == ADDR and k.mnemonic == WORDS
    with pytest.raises(facts.FactError):
        facts.parse_keys_add("Error: aborted")
    assert facts.parse_address(f"{ADDR}\n") == ADDR
    assert facts.parse_mnemonic(f"# c\naddress: {ADDR}\n{WORDS}\n") == WORDS


# ------------------------------------------------------------------------------ the warm key
KEY_ADDR = "gonka1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu"
NOT_FOUND = "node-a is not a valid name or address: decoding bech32 failed: invalid bech32 string length 6"
USAGE = "Usage:\n  inferenced keys show [name_or_address [name_or_address...]] [flags]\n\nFlags:\n  -a, --address\n"
NOT_FOUND_ADDR = ("Error: node-a is not a valid name or address: Invalid key: "
                  "gonka1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu.address: key not found")


@pytest.mark.parametrize("rc,out,listing,state", [
    (0, KEY_ADDR + "\n", {"keyhash", "node-a.info"}, "present"),
    (0, " Container join-node-1  Running\n" + KEY_ADDR + "\n", None, "present"),
    (1, USAGE + NOT_FOUND + "\n", set(), "absent"),
    (1, "Error: " + NOT_FOUND + "\n", {"keyhash", "other.info"}, "absent"),
    (1, NOT_FOUND_ADDR + "\n", set(), "absent"),
    # a "not found" is believed only with a keyring listing that agrees
    (1, NOT_FOUND + "\n", None, "unknown"),
    (1, NOT_FOUND + "\n", {"node-a.info"}, "unknown"),
    # anything else is not an answer
    (0, "", set(), "unknown"),
    (0, f"{KEY_ADDR}\ngonka1zg69v7yszg69v7yszg69v7yszg69v7ys8xdv96\n", set(), "unknown"),
    (2, NOT_FOUND + "\n", set(), "unknown"),
    (1, "Error: node-b is not a valid name or address: decoding bech32 failed: x\n", set(), "unknown"),
    (1, "Error response from daemon: i/o timeout\n", set(), "unknown"),
    (125, "Error response from daemon: No such container: api\n", set(), "unknown"),
    (1, "Error: rpc error: code = Unavailable\n", set(), "unknown"),
    (None, "", set(), "unknown"),
    (255, "", set(), "unknown"),
    (1, "Error: node-a is not a valid name or address: aes.KeyUnwrap(): integrity check failed.\n", set(),
     "bad_password"),
    (1, "node-a is not a valid name or address: square/go-jose: compact JWE format must have five parts\n",
     {"node-a.info"}, "broken"),
    (1, "node-a is not a valid name or address: square/go-jose: compact JWE format must have five parts\n",
     set(), "unknown"),
    (1, "incorrect passphrase\nEOF\nEOF\nnode-a is not a valid name or address: too many failed passphrase attempts\n", set(),
     "bad_password"),
])
def test_decide_warm_key_believes_only_a_clear_answer(rc, out, listing, state):
    got = facts.decide_warm_key("node-a", rc, out, listing)
    assert got.state == state, got
    assert (got.address == KEY_ADDR) == (state == "present")


def test_keyring_listing():
    assert facts.parse_keyring_listing(f"{facts.KEYRING_NO_DIR}\n") == set()
    assert facts.parse_keyring_listing(f"keyhash\nnode-a.info\n{facts.KEYRING_LISTED}\n") == {"keyhash", "node-a.info"}
    assert facts.parse_keyring_listing(f"{facts.KEYRING_LISTED}\n") == set()
    for unknown in ("", "ls: cannot open directory: Permission denied\n", "keyhash\nnode-a.info\n"):
        assert facts.parse_keyring_listing(unknown) is None


def test_keyring_listing_probe_on_a_real_shell(tmp_path):
    import subprocess  # noqa: PLC0415

    d = tmp_path / "keyring-file"

    def listing():
        r = subprocess.run(["sh", "-c", facts.keyring_listing_probe(str(d))], capture_output=True, text=True)
        return facts.parse_keyring_listing(r.stdout)
    assert listing() == set()
    d.mkdir()
    (d / "node-a.info").write_text("x")
    assert listing() == {"node-a.info"}
    d.chmod(0o000)
    try:
        if os.geteuid() != 0:  # root reads it anyway
            assert listing() is None
    finally:
        d.chmod(0o700)
    (tmp_path / "file").write_text("")
    d = tmp_path / "file"
    assert listing() is None  # not a directory


def test_pending_output_markers():
    text = "__PID=42\n- address: a\n\x00\x00\nword word\n__RC=0\n\n__ALIVE__\n\x00\x00"
    p = facts.parse_pending_output(text, "__RC=", "__PID=", "__ALIVE__")
    assert (p.text.split(), p.exit_code, p.alive) == (["-", "address:", "a", "word", "word"], 0, True)
    p = facts.parse_pending_output("__PID=42\npartial\x00\x00", "__RC=", "__PID=", "__ALIVE__")
    assert (p.exit_code, p.alive) == (None, False)


# ------------------------------------------------------------------------------ paths
@pytest.mark.parametrize("given,norm,system", [
    ("/mnt/ssd", "/mnt/ssd", None), ("/mnt//ssd/./", "/mnt/ssd", None), ("//etc", "/etc", "/etc"),
    ("/etc/.", "/etc", "/etc"), ("/./usr", "/usr", "/usr"), ("/usr/local/data", "/usr/local/data", "/usr"),
    ("/var/lib/docker/x", "/var/lib/docker/x", "/var/lib/docker"), ("/var/gonka", "/var/gonka", None),
    ("/", "/", "/"), ("/mnt", "/mnt", "/mnt"), ("/a/../etc", None, None), ("mnt/ssd", None, None),
])
def test_mount_paths_are_normalised_before_the_system_check(given, norm, system):
    from gonka_tasks.config import paths  # noqa: PLC0415

    assert paths.normalise(given) == norm
    if norm:
        assert paths.system_dir(norm) == system
