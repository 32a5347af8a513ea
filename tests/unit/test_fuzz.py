"""Property-based fuzzing of every parser of operator and server input.

Whatever goes in, the only outcomes are a result of the documented type or the module's own
error type carrying a message: `config.load` -> NodeConfig | ConfigError, every parser in `facts`
-> result | FactError, `chaincfg` -> text | ChainConfigError, `address` -> value | ValueError,
and `ports` never raises. Inputs are junk bytes, any text, other encodings, random JSON and YAML,
and mutations of real outputs (the table fixtures of test_facts.py are the seeds). Any other
exception (TypeError, KeyError, RecursionError, ...) is a bug in the parser, not in the input.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import io
import itertools
import json
import os
import re
import string
import time
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gonka_tasks import config, errors, facts
from gonka_tasks.config import KNOWN_KEYS, NodeConfig, address, load
from gonka_tasks.core import chaincfg
from gonka_tasks.core.ports import bind_internal_ports, exposed_mappings, misbound_mappings
from gonka_tasks.errors import ConfigError
from tests.helpers import output, pubkey_b64

# Settings per test (decorators), so no global profile leaks into the other test modules.
_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
           HealthCheck.filter_too_much]


def fuzz(n: int) -> settings:
    """n examples per test; GONKA_FUZZ_SCALE=10 multiplies them for a longer hunt."""
    return settings(max_examples=n * int(os.environ.get("GONKA_FUZZ_SCALE", "1")), deadline=None,
                    suppress_health_check=_HEALTH)


# ------------------------------------------------------------------------------ shared strategies
# Any text without surrogates (st.text() never makes them), NUL and every other control included.
any_text = st.text(max_size=300)
printable = st.text(alphabet=string.printable, max_size=120)
long_run = st.builds(lambda c, n: c * n, st.characters(codec="utf-8"), st.integers(500, 6000))
digits_run = st.builds(lambda c, n: c * n, st.sampled_from("09\u0663\u00b2"), st.integers(1, 6000))
odd_text = st.one_of(any_text, printable, long_run, digits_run)

JSON_KEYS = ["blockdevices", "name", "path", "type", "fstype", "uuid", "mountpoints", "mountpoint", "children",
             "filesystems", "target", "source", "Name", "Service", "State", "ExitCode", "Health", "Publishers",
             "result", "sync_info", "latest_block_height", "catching_up", "validator_info", "pub_key", "value",
             "node_info", "network", "services", "profiles", "image"]
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                         st.floats(allow_nan=True, allow_infinity=True), any_text, st.sampled_from(JSON_KEYS))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.one_of(st.sampled_from(JSON_KEYS), st.text(max_size=12)), inner,
                                            max_size=5)),
    max_leaves=25)


@st.composite
def text_mutant(draw, seed: str) -> str:
    """A real output with a few characters inserted, deleted, replaced, duplicated or cut off."""
    s = seed
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(s)))
        j = draw(st.integers(i, min(len(s), i + 40)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "dup", "swapcase"]))
        if op == "insert":
            s = s[:i] + draw(st.one_of(st.text(max_size=8), st.sampled_from(list('{}[]",:\n\\\'- #=')))) + s[i:]
        elif op == "delete":
            s = s[:i] + s[j:]
        elif op == "replace":
            s = s[:i] + draw(st.text(max_size=6)) + s[j:]
        elif op == "truncate":
            s = s[:i]
        elif op == "dup":
            s = s[:j] + s[i:j] + s[j:]
        else:
            s = s[:i] + s[i:j].swapcase() + s[j:]
    return s


@st.composite
def json_mutant(draw, seed) -> str:
    """A real JSON output with subtrees replaced by random JSON, keys dropped or added."""
    def walk(v):
        roll = draw(st.integers(0, 11))
        if roll == 0:
            return draw(json_values)
        if isinstance(v, dict):
            out = {k: walk(x) for k, x in v.items() if draw(st.integers(0, 9))}
            if roll == 1:
                out[draw(st.sampled_from(JSON_KEYS))] = draw(json_values)
            return out
        if isinstance(v, list):
            items = [walk(x) for x in v]
            return items + [draw(json_values)] if roll == 1 else items
        return v
    return json.dumps(walk(seed))


def inputs_from(*text_seeds: str, json_seeds: tuple = ()) -> st.SearchStrategy[str]:
    """Random text, random JSON, the given real outputs as they are, and mutations of them."""
    parts = [odd_text, json_values.map(json.dumps), st.sampled_from(text_seeds),
             st.sampled_from(text_seeds).flatmap(text_mutant)]
    if json_seeds:
        parts.append(st.sampled_from(json_seeds).flatmap(json_mutant))
    return st.one_of(*parts)


def nested(depth: int, open_: str, close: str, inner: str = "") -> str:
    return open_ * depth + inner + close * depth


# --------------------------------------------------------------------------------- config files
PASSWORD = "correct horse battery"
VALID_BASE = {
    "SERVER_IP": "198.51.100.7",
    "KEY_NAME": "node-a",
    "KEYRING_PASSWORD": PASSWORD,
    "ACCOUNT_PUBKEY": pubkey_b64(),
    "ALLOW_PRIVATE_ADDRESSES": "true",
}
KEYS = sorted(KNOWN_KEYS)
PEER = "0123456789abcdef0123456789abcdef01234567@203.0.113.5:26656"
SAMPLE_VALUES = [
    "", " ", "0", "1", "22", "65535", "65536", "-1", "+5", "1e3", "true", "no", "maybe", "198.51.100.7",
    "2001:db8::5", "[2001:db8::5]", "::1", "127.0.0.1", "10.0.0.1", "999.1.1.1", "1.2.3", "localhost",
    "example.com.", "-bad-.com", "http://node.example:8000", "https://[2001:db8::1]:8443/x", "http://x:99999",
    "http://[::1", "http://", "ftp://x", "tcp://203.0.113.5:5000", "tcp://:5000", "/dev/vdc", "/dev/../etc",
    "/mnt/ssd", "/mnt/ssd/", "/", "/etc", "relative", "..", "~", "~/.ssh/id_ed25519", "~nosuchuser-h4/key",
    "/nonexistent/key", "[", "[]", '["--a", "b"]', "[1, 2]", '{"a": 1}', "--x 'unclosed", "a b 'c d'",
    "ssh-ed25519 AAAA", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", "ssh-rsa !!!", "git@github.com:org/repo.git",
    "file:///srv/git/gonka.git", pubkey_b64(), pubkey_b64("x") + "=", '{"key": "A"}', PEER,
    f"{PEER},{PEER}", "nothex@1.2.3.4:1", "MiniMaxAI/MiniMax-M2.7", "a/b/c", "v1..2", "main", "node.1",
    "\u0663", "\u00b2", "\u00b2\u00b3", "\u0663\u0663\u0663\u0663", "9" * 5000, "[" * 3000, "x" * 300,
    "$HOME", "${SERVER_IP}", "a\\nb", "tab\there", "caf\u00e9", "\u202eevil", "\ufeff", "\x1b[31mred",
]
values = st.one_of(st.sampled_from(SAMPLE_VALUES), any_text, printable, long_run, digits_run,
                   st.integers().map(str))
STYLES = ["plain", "single", "double", "bare_single", "bare_double", "open_single", "open_double"]


def render(key: str, value: str, style: str = "single", prefix: str = "", eq: str = "=", suffix: str = "") -> str:
    """One dotenv assignment; `single`/`double` quote so that dotenv reads the value back exactly."""
    if style == "single":
        value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    elif style == "double":
        value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif style == "bare_single":
        value = f"'{value}'"
    elif style == "bare_double":
        value = f'"{value}"'
    elif style == "open_single":
        value = "'" + value
    elif style == "open_double":
        value = '"' + value
    return f"{prefix}{key}{eq}{value}{suffix}"


@st.composite
def assignment(draw) -> str:
    """A KEY=value line with random quoting, `export`, spacing around `=`, and trailing comments."""
    return render(draw(st.sampled_from(KEYS)), draw(values), draw(st.sampled_from(STYLES)),
                  prefix=draw(st.sampled_from(["", "", "export ", "  ", "\t", "export\t", "exportx ", "# "])),
                  eq=draw(st.sampled_from(["=", "=", " = ", "= ", "==", " =", "=\t", "", ":", "=="])),
                  suffix=draw(st.sampled_from(["", "", " # comment", "#x", "  ", " \\", " 'x", "=y"])))


# Values that keep a config valid, so that a good share of the examples reach NodeConfig.
good_overrides = st.one_of(
    st.tuples(st.sampled_from(["SSH_PORT", "API_PORT", "P2P_PORT", "PORT"]), st.integers(1, 65535).map(str)),
    st.tuples(st.just("MAX_CONCURRENT"), st.integers(1, 100000).map(str)),
    st.tuples(st.just("MODEL_ARGS"), st.lists(st.text(max_size=10), max_size=4).map(json.dumps)),
    st.tuples(st.just("KEY_NAME"), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)),
    st.tuples(st.just("KEYRING_PASSWORD"), st.text(min_size=12, max_size=40).filter(
        lambda s: not any(c in s for c in "\r\n\0") and s.strip() == s and s)),
    st.tuples(st.just("PERSISTENT_PEERS"), st.lists(st.just(PEER), max_size=3).map(",".join)),
    st.tuples(st.just("SERVER_IP"), st.ip_addresses(v=4).map(str)),
    st.tuples(st.sampled_from(["ADOPT_DISK", "ALLOW_UNAPPROVED_MODEL"]), st.sampled_from(["yes", "off", "1"])),
)
junk_line = st.one_of(any_text.map(lambda s: s.replace("\0", "")), printable,
                      st.sampled_from(["#", "# comment", "=", "==", "=value", "export", "export =x", "'", '"',
                                       "KEY", "'quoted key'=v", "'a\nb'=c", "A B=c", "1ABC=x", "\\", "  # x"]))


@st.composite
def config_text(draw) -> str:
    """A config: often a valid one, with random assignments, comments, junk and long lines mixed in."""
    lines: list[str] = []
    if draw(st.integers(0, 3)):
        style = draw(st.sampled_from(["plain", "single", "double"]))
        base = dict(VALID_BASE)
        for k, v in draw(st.lists(good_overrides, max_size=4)):
            base[k] = v
        lines = [render(k, v, "single" if style == "plain" and not re.fullmatch(r"[\w./:@+-]*", v) else style)
                 for k, v in base.items()]
    extra = draw(st.lists(st.one_of(assignment(), junk_line, long_run, st.just("")),
                          max_size=draw(st.sampled_from([0, 0, 3, 12]))))
    for e in extra:
        lines.insert(draw(st.integers(0, len(lines))), e)
    nl = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    text = nl.join(lines) + draw(st.sampled_from(["", nl]))
    return draw(st.sampled_from(["", "", "\ufeff"])) + text


ENCODINGS = ["utf-8", "utf-8", "utf-16", "utf-16-be", "latin-1", "cp1252", "utf-32", "utf-7"]
config_bytes = st.one_of(
    st.binary(max_size=2000),
    any_text.map(str.encode),
    st.tuples(config_text(), st.sampled_from(ENCODINGS)).map(lambda t: t[0].encode(t[1], errors="replace")),
    config_text().map(str.encode),
    config_text().map(str.encode),
    st.tuples(config_text(), st.binary(min_size=1, max_size=40), st.floats(0, 1)).map(
        lambda t: (lambda b, i: b[:i] + t[1] + b[i:])(t[0].encode(), int(len(t[0].encode()) * t[2]))),
)

_counter = itertools.count()
# Message wording comes from these modules; a password equal to a piece of it proves nothing.
_WORDING = "".join(inspect.getsource(m) for m in (config, errors, address)) + "0123456789 "


def _write(tmp_path: Path, data: bytes) -> Path:
    nodes = tmp_path / f"ex{next(_counter)}" / "nodes"
    nodes.mkdir(parents=True)
    path = nodes / "node-a.conf"
    path.write_bytes(data)
    return path


def _problem_named(p: str) -> bool:
    """A problem line names a known key, the file, a line number, or the bad key it is about."""
    head = p.split(":", 1)[0]
    return (head in KNOWN_KEYS or head == "file" or re.fullmatch(r"line \d+", head) is not None
            or p.endswith(": not a valid key name (use A-Z, 0-9 and _)"))


def check_config_outcome(path: Path) -> NodeConfig | ConfigError:
    try:
        cfg = load(path)
    except ConfigError as e:
        msg = str(e)
        assert msg.strip() and e.problems
        for p in e.problems:
            assert len(p.splitlines()) == 1, f"problem spans lines: {p!r}"
            assert _problem_named(p), f"problem names no key, file or line: {p!r}"
        event("config: ConfigError")
        return e
    # A config that validates must be usable: every typed accessor works.
    assert isinstance(cfg, NodeConfig)
    assert (cfg.ssh_port is None or 1 <= cfg.ssh_port <= 65535) and 1 <= cfg.api_port <= 65535
    assert cfg.max_concurrent >= 1
    assert all(isinstance(a, str) for a in cfg.model_args)
    assert all(isinstance(k, str) for k in cfg.admin_ssh_keys + cfg.persistent_peers)
    assert cfg.cold_address.startswith("gonka1")
    assert cfg.mount_point.startswith("/") and cfg.data_disk.startswith("/dev/")
    assert all(cfg.seconds(k) >= 1 for k in ("RPC_TIMEOUT", "REGISTRATION_TIMEOUT", "LAUNCH_TIMEOUT"))
    assert all(isinstance(cfg.flag(k), bool) for k in ("ADOPT_DISK", "ALLOW_UNAPPROVED_MODEL"))
    assert dict(cfg.display_rows())["KEYRING_PASSWORD"] == "***"
    event("config: NodeConfig")
    return cfg


@fuzz(700)
@given(data=config_bytes)
def test_config_load_gives_nodeconfig_or_configerror(tmp_path, data):
    check_config_outcome(_write(tmp_path, data))


password = st.one_of(st.text(min_size=4, max_size=70), st.text(alphabet=string.printable, min_size=4, max_size=70))


@fuzz(300)
@given(pw=password, style=st.sampled_from(["single", "double", "plain"]),
       extra=st.lists(st.one_of(assignment(), junk_line), max_size=5), data=st.data())
def test_config_error_never_shows_the_password(tmp_path, pw, style, extra, data):
    lines = [render(k, v) for k, v in VALID_BASE.items() if k != "KEYRING_PASSWORD"] + extra
    pw_line = render("KEYRING_PASSWORD", pw, style)
    lines.insert(data.draw(st.integers(0, len(lines))), pw_line)
    text = "\n".join(lines) + "\n"
    others = "\n".join(ln for ln in lines if ln is not pw_line)
    parsed = dotenv_values(stream=io.StringIO(text), interpolate=False)
    outcome = check_config_outcome(_write(tmp_path, text.encode()))
    shown = {pw, pw.encode("unicode_escape").decode("ascii")}
    if (not isinstance(outcome, ConfigError) or parsed.get("KEYRING_PASSWORD") != pw
            or any(s in others or s in _WORDING or s in str(outcome.source) for s in shown)
            or any(pw in (k or "") or pw in (v or "") for k, v in parsed.items() if k != "KEYRING_PASSWORD")):
        return
    event("password: checked")
    assert not any(s in str(outcome) for s in shown), str(outcome)


@fuzz(150)
@given(pw=st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), min_size=4, max_size=70),
       broken=st.sampled_from(["KEYRING_PASSWORD='{}", 'KEYRING_PASSWORD="{}', "KEYRING_PASSWORD {}",
                               "KEYRING_PASSWORD:{}", "export KEYRING_PASSWORD :{}", "HF_TOKEN '{}"]))
def test_config_error_masks_a_broken_secret_line(tmp_path, pw, broken):
    """A typo in the password line must not put the password on the console."""
    text = "".join(render(k, v) + "\n" for k, v in VALID_BASE.items() if k != "KEYRING_PASSWORD")
    text += broken.format(pw) + "\n"
    outcome = check_config_outcome(_write(tmp_path, text.encode()))
    if isinstance(outcome, ConfigError) and pw.strip() and pw.strip() not in _WORDING + outcome.source:
        assert pw.strip() not in str(outcome), str(outcome)


# --------------------------------------------------------------------------------- facts parsers
def fact_outcome(fn, *args):
    """Run a parser: a FactError with a message is fine, any other exception fails the test."""
    try:
        return fn(*args)
    except facts.FactError as e:
        assert str(e).strip()
        event(f"{fn.__name__}: FactError")
        return None


def _check_device(d: facts.BlockDevice) -> None:
    assert isinstance(d, facts.BlockDevice)
    assert all(isinstance(x, str) for x in (d.name, d.path, d.type))
    assert d.fstype is None or isinstance(d.fstype, str)
    assert d.uuid is None or isinstance(d.uuid, str)
    assert all(isinstance(m, str) and m for m in d.mountpoints)
    for c in d.children:
        _check_device(c)


def deep_lsblk(depth: int) -> str:
    dev = {"name": "vdc", "type": "disk"}
    text = json.dumps(dev)
    for i in range(depth):
        text = f'{{"name": "p{i}", "children": [{text}]}}'
    return f'{{"blockdevices": [{text}]}}'


# the seeds of the mutations: the command outputs the parser tests read (tests/fixtures/outputs/)
LSBLK_SEEDS = tuple(output(n) for n in ("lsblk-blank.json", "lsblk-partitions.json", "lsblk-mountpoint-2.33.json",
                                        "lsblk-h200-ubuntu24.json"))
FSTAB_SEED = output("fstab.txt")
PS_NDJSON, PS_ARRAY = output("compose-ps.ndjson"), output("compose-ps-array.json")
STATUS = json.loads(output("rpc-status.json"))
KEYS_ADD_OUT = output("keys-add.txt")
ADDR = "gonka1xrxsnuyewsvgxe86yz3t6twzmejrxldekkclqy"  # the address in keys-add.txt
WORDS = next(ln for ln in KEYS_ADD_OUT.splitlines() if len(ln.split()) == 24)  # its mnemonic
lsblk_inputs = st.one_of(st.sampled_from(LSBLK_SEEDS + (LSBLK_SEEDS[0].replace("[null]", '["/mnt/ssd"]'),)),
                         inputs_from(*LSBLK_SEEDS, json_seeds=tuple(json.loads(s) for s in LSBLK_SEEDS)),
                         st.integers(1, 1500).map(deep_lsblk))


@fuzz(250)
@given(text=lsblk_inputs)
def test_parse_lsblk(text):
    devs = fact_outcome(facts.parse_lsblk, text)
    if devs is not None:
        assert isinstance(devs, list)
        for d in devs:
            _check_device(d)


BLKID_SEED = "DEVNAME=/dev/vdc\nUUID=1234-abcd\nBLOCK_SIZE=4096\nTYPE=ext4\nPTTYPE=gpt\n"
BLKID_REAL = ["", "UUID=u\nTYPE=ext4\n", "UUID=1234-abcd\nTYPE=ext4\n", "TYPE=ext4\n", "UUID=u\nTYPE=xfs\n",
              "PTUUID=x\nPTTYPE=gpt\n", "PTTYPE=dos\n", "TYPE=swap\nUUID=s\n"]
blkid_inputs = st.one_of(
    st.sampled_from(BLKID_REAL), st.sampled_from(BLKID_REAL),
    inputs_from(BLKID_SEED),
    st.lists(st.tuples(st.one_of(st.sampled_from(["TYPE", "UUID", "PTTYPE", " TYPE ", "type"]), any_text),
                       st.one_of(st.sampled_from(["ext4", "xfs", "gpt", "dos", "", "u"]), any_text)),
             max_size=6).map(lambda kv: "\n".join(f"{k}={v}" for k, v in kv)))


@fuzz(150)
@given(text=blkid_inputs)
def test_parse_blkid_export(text):
    out = fact_outcome(facts.parse_blkid_export, text)
    assert isinstance(out, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in out.items())


ROOTS = ["disk / vda\nDONE\n", "disk /boot vda\nnodev / rpool/ROOT\nDONE\n", "disk / vdc\nDONE\n", "",
         "disk / vda\ndisk / vdb\nDONE\n", "unknown / /dev/dm-0\nDONE\n", "disk / vda\n", "└─vda disk\nDONE\n"]
# Probes as a server gives them (every branch of decide_disk), and probes with random parts.
real_probes = st.tuples(st.just(0), st.sampled_from(BLKID_REAL),
                        st.sampled_from(LSBLK_SEEDS[:1] * 2 + LSBLK_SEEDS), st.sampled_from(ROOTS))
random_probes = st.tuples(st.one_of(st.just(0), st.integers()), blkid_inputs, lsblk_inputs,
                          st.one_of(st.sampled_from(ROOTS), any_text))


@fuzz(300)
@given(probe=st.one_of(real_probes, random_probes),
       disk=st.one_of(st.just("/dev/vdc"), any_text), mp=st.one_of(st.just("/mnt/ssd"), any_text),
       recorded=st.one_of(st.none(), st.just("u"), st.just("1234-abcd"), any_text), adopt=st.booleans())
def test_disk_facts_and_decision(probe, disk, mp, recorded, adopt):
    f = fact_outcome(facts.disk_facts, *probe)
    if f is None:
        return
    assert isinstance(f, facts.DiskFacts) and isinstance(f.root_disks, set)
    d = facts.decide_disk(f, disk, mp, recorded, adopt)
    assert isinstance(d, facts.DiskDecision) and d.action in ("format", "keep", "error")
    assert isinstance(d.reason, str) and d.reason and isinstance(d.found, str)
    event(f"decide_disk: {d.action}")
    # Safety: only a present, unmounted, signature-free, partition-free, non-system disk is formatted,
    # and only an ext4 that is ours (or adopted) is kept.
    if d.action == "format":
        assert f.exists and not f.signature.get("TYPE") and not f.signature.get("PTTYPE") and not f.mounted_at
        assert not (f.device and f.device.children)
        assert not (f.device and f.device.name in f.root_disks)
        # the system disk is known (a complete probe, every system mount placed)
        assert not f.root_unknown and probe[3].rstrip().endswith("DONE")
    if d.action == "keep":
        assert f.signature.get("TYPE") == "ext4" and d.uuid == f.signature.get("UUID")
        assert d.uuid == recorded or adopt


# fstab: lines without whitespace inside fields, so that the entry we add is one for the mount point.
# (str.isspace covers every character str.splitlines breaks at.)
field_text = st.text(st.characters(codec="utf-8").filter(lambda c: not c.isspace()), min_size=1, max_size=12)
mount_points = st.one_of(st.sampled_from(["/mnt/ssd", "/mnt/ssd/", "/", "/data", "/mnt/ssd2"]),
                         field_text.map(lambda s: "/" + s))
fstab_lines = st.one_of(
    any_text.map(lambda s: s.replace("\n", " ")),
    st.tuples(st.sampled_from(["UUID=a", "/dev/x", "#UUID=c", "tmpfs"]), mount_points,
              st.sampled_from(["ext4 defaults 0 0", "xfs", ""])).map(" ".join),
    st.sampled_from(["", "# comment", "  /dev/y /mnt/ssd ext4 defaults 0 0", "/dev/z\t/mnt/ssd/\text4"]),
)
fstab_texts = st.one_of(st.just(FSTAB_SEED), st.lists(fstab_lines, max_size=10).map("\n".join),
                        any_text, st.sampled_from([FSTAB_SEED]).flatmap(text_mutant))


def _is_entry(ln: str, mp: str) -> bool:
    f = ln.split()
    return len(f) >= 2 and not f[0].startswith("#") and f[1].rstrip("/") == mp.rstrip("/")


@fuzz(250)
@given(text=fstab_texts, mp=mount_points,
       src=field_text.filter(lambda s: not s.startswith("#")), opts=field_text)
def test_fstab_with_entry_has_exactly_one_entry_and_keeps_the_rest(text, mp, src, opts):
    line = f"{src} {mp} ext4 {opts} 0 2"
    new = fact_outcome(facts.fstab_with_entry, text, line, mp)
    assert isinstance(new, str) and new.endswith("\n")
    assert facts.fstab_entries_for(new, mp) == [line]
    assert [ln for ln in new.splitlines() if not _is_entry(ln, mp)] == \
           [ln for ln in text.splitlines() if not _is_entry(ln, mp)]
    assert facts.fstab_with_entry(new, line, mp) == new
    event(f"fstab: {'replaced' if facts.fstab_entries_for(text, mp) else 'appended'}")
    assert all(_is_entry(e, mp) for e in facts.fstab_entries_for(text, mp))


@fuzz(100)
@given(text=any_text, line=any_text, mp=any_text)
def test_fstab_functions_on_any_text(text, line, mp):
    assert isinstance(fact_outcome(facts.fstab_with_entry, text, line, mp), str)
    assert all(isinstance(e, str) for e in fact_outcome(facts.fstab_entries_for, text, mp))


FINDMNT_SEED = json.dumps({"filesystems": [
    {"target": "/mnt/ssd", "source": "/dev/vdc", "fstype": "ext4", "uuid": "u",
     "children": [{"target": "/mnt/ssd/x", "source": "/dev/vdc[/x]", "fstype": "ext4", "uuid": "u"}]}]})


@fuzz(200)
@given(text=st.one_of(inputs_from(FINDMNT_SEED, json_seeds=(json.loads(FINDMNT_SEED),)),
                      st.integers(1, 1500).map(lambda d: '{"filesystems": ' + nested(d, "[", "]") + "}"),
                      st.integers(1, 1500).map(
                          lambda d: '{"filesystems": [{"target": ' + nested(d, "[", "]") + "}]}")))
def test_parse_findmnt(text):
    out = fact_outcome(facts.parse_findmnt, text)
    if out is not None:
        assert isinstance(out, list)
        assert all(isinstance(k, str) and isinstance(v, str) for fs in out for k, v in fs.items())


PS_SEEDS = (PS_NDJSON, PS_ARRAY)


@fuzz(250)
@given(text=st.one_of(
    inputs_from(*PS_SEEDS, json_seeds=(json.loads(PS_ARRAY),
                                       [json.loads(ln) for ln in PS_NDJSON.splitlines()])),
    st.lists(json_values.map(json.dumps), max_size=4).map("\n".join),
    st.integers(1, 1500).map(lambda d: nested(d, "[", "]")),
    st.integers(1, 1500).map(lambda d: '[{"Name": ' + nested(d, "[", "]") + "}]")))
def test_parse_compose_ps(text):
    out = fact_outcome(facts.parse_compose_ps, text)
    if out is not None:
        assert isinstance(out, list)
        for c in out:
            assert isinstance(c, facts.Container)
            assert all(isinstance(x, str) for x in (c.name, c.service, c.state, c.health))
            assert isinstance(c.exit_code, int) and isinstance(c.publishers, list)
            assert isinstance(c.running, bool)


COMPOSE_SEED = (
    "services:\n  api: {image: a}\n  proxy-ssl:\n    image: b\n    profiles: [ssl]\n  node:\n    image: c\n"
    "    ports:\n      - \"9100:9100\"\n    environment:\n      - KEY=${KEY:-x}\n")
YAML_TRICKS = [
    "services:\n  x: {created: 2001-02-30}\n", "services:\n  x: {n: " + "9" * 5000 + "}\n",
    "services:\n  123: {}\n  1.5: {}\n  null: {}\n  true: {}\n", "services:\n  ? [a]\n  : b\n",
    "services: &a\n  x: *a\n", "services:\n  <<: 5\n", "services: !!binary AAA=\n",
    "services:\n  x: !!python/object:os.system {}\n", "services: {x: !!int abc}\n", "\0", "%YAML 9.9\n---\n",
    "services:\n  x: !!timestamp 2001-13-01\n", "services:\n  x: !!float ..\n", "services: !!set {a, b}\n",
    "services:\n  2001-01-01: {}\n", "services: !!omap [a: 1]\n", "services: !!pairs [a: 1]\n",
    "services: {x: !!bool maybe}\n", "services: {x: !!int}\n", "services: {x: !!float}\n", "x: !!int +\n",
    "services: {x: !!timestamp soon}\n", "services: !!timestamp\n", "services: {x: !!binary \u00e9}\n",
]


@fuzz(250)
@given(text=st.one_of(inputs_from(COMPOSE_SEED, *YAML_TRICKS), st.sampled_from(YAML_TRICKS),
                      # deep nesting: PyYAML recurses (and is slow at it), so a few depths around the limit
                      st.sampled_from([3, 300, 990, 1500]).map(lambda d: "services: " + nested(d, "[", "]")),
                      st.sampled_from([3, 300, 990, 3000]).map(lambda d: "services: " + nested(d, "{a: ", "}", "b"))))
def test_compose_services(text):
    out = fact_outcome(facts.compose_services, text)
    if out is not None:
        assert isinstance(out, list) and all(isinstance(s, str) for s in out)


@fuzz(200)
@given(text=st.one_of(inputs_from(json.dumps(STATUS), json_seeds=(STATUS, STATUS["result"])),
                      st.integers(1, 1500).map(lambda d: nested(d, '{"result": ', "}", "1")),
                      st.integers(1, 1500).map(lambda d: '{"sync_info": {}, "node_info": {"network": '
                                               + nested(d, "[", "]") + "}}")))
def test_parse_rpc_status(text):
    s = fact_outcome(facts.parse_rpc_status, text)
    if s is not None:
        assert isinstance(s, facts.RpcStatus)
        assert isinstance(s.network, str) and isinstance(s.height, int) and isinstance(s.validator_pubkey, str)
        assert isinstance(s.catching_up, bool)


key_texts = st.one_of(inputs_from(KEYS_ADD_OUT, f"{ADDR}\n", f"# c\n{WORDS}\n",
                                  "name value\nother  two words\n"),
                      st.builds(lambda n, c: " " * n + c, st.integers(1, 30000),
                                st.sampled_from(["x", "-", "- a"])))


@fuzz(300)
@given(text=key_texts)
def test_key_and_line_parsers(text):
    k = fact_outcome(facts.parse_keys_add, text)
    if k is not None:
        assert isinstance(k, facts.NewKey) and k.address.startswith("gonka1")
        assert len(k.mnemonic.split()) in (12, 15, 18, 21, 24)
    a = fact_outcome(facts.parse_address, text)
    assert a is None or (isinstance(a, str) and a.startswith("gonka1"))
    m = fact_outcome(facts.parse_mnemonic, text)
    assert m is None or (isinstance(m, str) and len(m.split()) in (12, 15, 18, 21, 24))
    kv = fact_outcome(facts.parse_kv_lines, text)
    assert isinstance(kv, dict) and all(isinstance(x, str) and isinstance(y, str) for x, y in kv.items())


N = 100_000
SLOW_LINES = {"spaces": " " * N + "x", "dash spaces": "- " * N + "x", "tabs": "\t" * N + "-\tx",
              "words": "a " * N + "!",
              "digits": "- " + "1" * N + ":" + "1" * N + "x", "address": "address:" + " " * N + "x y",
              "equals": "A" + "=" * N, "prefix": "gonka1" * (N // 6), "quotes": "'" * N, "escapes": '"\\' * N,
              "brackets": "a = " + "[" * N}
LINE_PARSERS = {
    "keys_add": facts.parse_keys_add, "address": facts.parse_address, "mnemonic": facts.parse_mnemonic,
    "kv_lines": facts.parse_kv_lines, "blkid": facts.parse_blkid_export,
    "compose_services": facts.compose_services,
    "fstab": lambda t: facts.fstab_with_entry(t, "L /m ext4", "/m"), "config": config.parse_text,
    "ports": lambda t: (bind_internal_ports(t, {1}, "127.0.0.1", {}), exposed_mappings(t, {1}, {})),
    "peers": chaincfg.persistent_peers, "pruning": chaincfg.pruning, "bech32": address.bech32_decode,
}


@pytest.mark.parametrize("parser", sorted(LINE_PARSERS))
def test_no_parser_backtracks_for_ages_on_long_lines(parser):
    """A 100k-character line of one repeated pattern takes milliseconds, not minutes (no quadratic regex)."""
    for name, text in SLOW_LINES.items():
        t0 = time.monotonic()
        with contextlib.suppress(ValueError):  # FactError, ChainConfigError and Bech32Error are ValueErrors
            LINE_PARSERS[parser](text)
        assert time.monotonic() - t0 < 3, f"{parser} took {time.monotonic() - t0:.1f}s on {name}"


# ------------------------------------------------------------------- the warm key and the mount point
KEY_OUTPUTS = ["gonka1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu\n",
               "node-a is not a valid name or address: decoding bech32 failed: invalid bech32 string length 6\n",
               "Error: node-a is not a valid name or address: key not found\n", "incorrect passphrase\nEOF\n",
               "node-a is not a valid name or address: square/go-jose: compact JWE format must have five parts\n"]
LISTINGS = [f"{facts.KEYRING_LISTED}\n", f"node-a.info\n{facts.KEYRING_LISTED}\n", f"{facts.KEYRING_NO_DIR}\n", ""]


@fuzz(300)
@given(code=st.one_of(st.none(), st.integers(-300, 300)), out=st.one_of(inputs_from(*KEY_OUTPUTS), any_text),
       listing=st.one_of(st.sampled_from(LISTINGS), inputs_from(*LISTINGS)), name=st.sampled_from(["node-a", "x"]))
def test_warm_key_decision_is_absent_only_on_a_clear_answer(code, out, listing, name):
    files = fact_outcome(facts.parse_keyring_listing, listing)
    st_ = facts.decide_warm_key(name, code, out, files)
    assert st_.state in ("present", "absent", "unknown", "bad_password", "broken")
    event(f"key state: {st_.state}")
    if st_.state == "absent":  # the one answer that lets keys add run
        assert code == 1 and files is not None and f"{name}.info" not in files
        assert f"{name} is not a valid name or address: " in out
    if st_.state == "present":
        assert code == 0 and facts.is_address(st_.address)
    p = facts.parse_pending_output(out + listing, "__RC=", "__PID=", "__ALIVE__")
    assert isinstance(p.text, str) and (p.exit_code is None or isinstance(p.exit_code, int))
    disks, unknown = facts.parse_root_disks(out)
    assert isinstance(disks, set) and isinstance(unknown, list)


MP_OUTPUTS = ["/mnt/ssd\n__GD_MP__\nmissing\n__GD_MP__\n", "/mnt/ssd\n__GD_MP__\ndir\n__GD_MP__\n__GD_MP__\n",
              "/etc\n__GD_MP__\nsymlink\n__GD_MP__\n__GD_MP__\n", "/mnt/ssd\n__GD_MP__\ndir\n__GD_MP__\na\n__GD_MP__\n"]


@fuzz(300)
@given(out=st.one_of(inputs_from(*MP_OUTPUTS), any_text), mp=st.sampled_from(["/mnt/ssd", "/data/x"]),
       mounted=st.lists(st.dictionaries(st.sampled_from(["SOURCE", "UUID", "FSTYPE"]), any_text), max_size=2))
def test_mount_point_decision_is_safe_on_any_answer(out, mp, mounted):
    d = facts.decide_mount_point(mp, out, mounted, "/dev/vdc", {"u"})
    event(f"mount point ok: {d.ok}")
    assert isinstance(d.reason, str) and d.reason
    if d.ok and not mounted:  # only a path that resolves to itself and is missing or an empty directory
        lines = out.splitlines()
        assert lines[0].strip() == mp and (lines[2].strip() == "missing" or lines[4].strip() == "__GD_MP__")


# Hostile names: quotes, $(...), backticks, globs, inner spaces (MOUNT_POINT itself allows far fewer
# characters; a line-based answer cannot carry a newline or edge spaces, so those stay out).
shell_names = st.text(st.characters(codec="utf-8", exclude_characters="\0/\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
                      min_size=1, max_size=20).filter(lambda n: n == n.strip() and n not in (".", ".."))


@fuzz(60)
@given(name=shell_names)
def test_probe_builders_quote_any_path_for_the_shell(tmp_path_factory, name):
    """The probes run in a real sh on a path with any characters: no injection, a parseable answer."""
    import subprocess  # noqa: PLC0415

    d = tmp_path_factory.mktemp("p") / name
    for probe, parse in ((facts.keyring_listing_probe, facts.parse_keyring_listing),
                         (facts.mount_point_probe, lambda out: facts.decide_mount_point(str(d), out, [], "/dev/x", set()))):
        r = subprocess.run(["sh", "-c", probe(str(d))], capture_output=True, text=True, timeout=10)
        got = parse(r.stdout)
        assert got == set() or getattr(got, "ok", False), (name, r.stdout, r.stderr)
    assert not (tmp_path_factory.getbasetemp() / "pwned").exists()


@fuzz(200)
@given(path=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1,
                    max_size=40))
def test_device_and_mount_probes_keep_any_path_one_word(path):
    """lsblk, blkid and findmnt probes: whatever the path, the shell sees it as one word, last."""
    import shlex  # noqa: PLC0415

    for probe in (facts.lsblk_probe, facts.blkid_probe, facts.findmnt_probe):
        words = shlex.split(probe(path))
        assert words[-1] == path and len(words) == len(shlex.split(probe("x"))), (probe.__name__, words)


@fuzz(200)
@given(text=st.one_of(any_text, st.sampled_from(["0ea2579a-32cb-44f4-a4df-a02c4f96c98e", "$(id)", "u"])))
def test_values_read_back_are_checked_before_they_reach_a_shell(text):
    if facts.is_uuid(text):
        assert re.fullmatch(r"[0-9a-fA-F-]{36}", text)
    if facts.is_address(text):
        assert re.fullmatch(r"gonka1[0-9a-z]+", text)
    shown = facts.shown(text)
    assert "\n" not in shown and len(shown) <= 60 * 10 + 3


FUZZED_FACTS = {"parse_lsblk", "parse_blkid_export", "disk_facts", "decide_disk", "fstab_with_entry",
                "fstab_entries_for", "parse_findmnt", "parse_compose_ps", "compose_services", "parse_rpc_status",
                "parse_keys_add", "parse_address", "parse_mnemonic", "parse_kv_lines", "decide_warm_key",
                "parse_keyring_listing", "keyring_listing_probe", "parse_pending_output", "parse_root_disks",
                "mount_point_probe", "decide_mount_point", "is_uuid", "is_address", "shown", "lsblk_probe",
                "blkid_probe", "findmnt_probe"}


def test_every_facts_parser_is_fuzzed():
    """A parser added to facts/ without a fuzz test here fails this, so the guarantee stays whole."""
    public = {name for name, fn in inspect.getmembers(facts, inspect.isfunction)
              if fn.__module__.startswith(facts.__name__ + ".") and not name.startswith("_")}
    assert public <= FUZZED_FACTS, f"not fuzzed: {sorted(public - FUZZED_FACTS)}"


# --------------------------------------------------------------------------------- chaincfg
CONFIG_SEED, APP_SEED = output("config.toml"), output("app.toml")
TOML_TRICKS = [
    "p2p = 5\n", 'p2p = "persistent_peers"\n', "p2p = [1, 2]\n", "[p2p.persistent_peers]\nx = 1\n",
    "p2p.persistent_peers = 'a'\n", "[p2p]\npersistent_peers = 5\n", "[[p2p]]\npersistent_peers = ''\n",
    "[p2p]\n[x]\n[p2p.y]\npersistent_peers = ''\n", "pruning = 5\n", "[pruning]\na = 1\n",
    "pruning = 'x'\n[pruning-interval]\n", "pruning = 'x'\npruning-keep-recent = {a = 1}\n",
    "[api]\nenable = true\npruning = 'x'\n", "pruning = 'x'\n[[pruning-keep-recent]]\n",
    'pruning = "x"\n[a]\nb = 1\n[a.c]\n', "a = 1979-05-27T07:32:00Z\npruning = 'default'\n", "\0",
    "[p2p]\npersistent_peers = \"\"\n[p2p]\n", 'pruning = "default"\npruning = "x"\n',
    "[p2p]\npersistent_peers = ''\n[x]\n[p2p.y]\na = 1\n", "[p2p]\n[p2p.persistent_peers]\n",
    "p2p = {persistent_peers = 'a'}\n", "'p2p'.\"persistent_peers\" = 1\n",
    "[p2p]\npersistent_peers = ''\n[x]\n[p2p.y]\n[p2p.persistent_peers]\n",
    "pruning = 'x'\n[a]\n[b]\n[a.pruning]\n[a]\n",
]
toml_values = st.one_of(st.just("# comment"), st.builds(
    lambda k, v: f"{k} = {json.dumps(v)}", st.from_regex(r"[a-z_-]{1,12}", fullmatch=True),
    st.one_of(st.text(max_size=20), st.integers(-(2**63), 2**63 - 1), st.booleans(),
              st.lists(st.integers(0, 9), max_size=3))))
toml_lines = st.one_of(st.sampled_from(TOML_TRICKS),
                       st.sampled_from(["[x]", "[p2p]", "a = 1", "pruning = 1", 'persistent_peers = "x"', "[[aot]]",
                                        "b = [1,"]))


@st.composite
def toml_with_lines(draw) -> str:
    lines = draw(st.sampled_from([CONFIG_SEED, APP_SEED])).splitlines()
    for extra in draw(st.lists(st.one_of(toml_values, toml_values, toml_lines), max_size=3)):
        lines.insert(draw(st.integers(0, len(lines))), extra)
    return "\n".join(lines) + "\n"


peers_lists = st.lists(st.one_of(st.just(PEER), any_text), max_size=4)


def check_chaincfg(text: str, peers: list[str], keep: int, interval: int) -> None:
    """Reads give strings, edits set exactly what was asked and are idempotent; else ChainConfigError."""
    def run(fn, *args):
        try:
            return fn(*args)
        except chaincfg.ChainConfigError as e:
            assert str(e).strip()
            event(f"{fn.__name__}: ChainConfigError")
            return None

    if (got := run(chaincfg.persistent_peers, text)) is not None:
        assert isinstance(got, str)
    if (new := run(chaincfg.set_persistent_peers, text, peers)) is not None:
        event("set_persistent_peers: edited")
        assert chaincfg.persistent_peers(new) == ",".join(peers)
        assert chaincfg.set_persistent_peers(new, peers) == new
    if (p := run(chaincfg.pruning, text)) is not None:
        assert isinstance(p, tuple) and all(isinstance(x, str) for x in p)
    if (new := run(chaincfg.set_pruning, text, keep, interval)) is not None:
        event("set_pruning: edited")
        assert chaincfg.pruning(new) == ("custom", str(keep), str(interval))
        assert chaincfg.set_pruning(new, keep, interval) == new


@fuzz(300)
@given(text=st.one_of(inputs_from(CONFIG_SEED, APP_SEED, *TOML_TRICKS), st.sampled_from(TOML_TRICKS),
                      st.integers(1, 3000).map(lambda d: "a = " + nested(d, "[", "]")),
                      st.integers(1, 3000).map(lambda d: "a = " + nested(d, "{b = ", "}", "1"))),
       peers=peers_lists, keep=st.integers(0, 10**12), interval=st.integers(0, 10**12))
def test_chaincfg_on_random_text(text, peers, keep, interval):
    check_chaincfg(text, peers, keep, interval)


@fuzz(200)
@given(text=toml_with_lines(), peers=peers_lists, keep=st.integers(0, 10**12), interval=st.integers(0, 10**12))
def test_chaincfg_on_real_files_with_lines_added(text, peers, keep, interval):
    check_chaincfg(text, peers, keep, interval)


# --------------------------------------------------------------------------------- ports
COMPOSE_PORTS_SEED = """services:
  api:
    ports:
      - "9100:9100"
      - '${API_PORT:-8000}:8000'
      - 0.0.0.0:9200:9200/tcp   # admin
      - 127.0.0.1:5050:5050
      - "8080:8080/udp"
      - ${PORT}:8080
"""
mapping_lines = st.builds(
    lambda lead, q, ip, host, cont, proto, tail: f"{lead}{q}{ip}{host}:{cont}{proto}{q}{tail}",
    st.sampled_from(["- ", "  - ", "\t-", "-"]), st.sampled_from(["", '"', "'"]),
    st.sampled_from(["", "0.0.0.0:", "127.0.0.1:", "10.0.0.1:", "999.1.1.1:"]),
    st.one_of(st.sampled_from(["9100", "9200", "5050", "8080", "8000", "${PORT}", "${PORT:-8080}", "${X-9100}",
                               "\u0669\u0661\u0660\u0660", "9" * 5000, "${P:-" + "9" * 5000 + "}"]),
              st.integers(0, 10**6).map(str)),
    st.integers(0, 70000).map(str), st.sampled_from(["", "/tcp", "/udp", "/sctp"]),
    st.sampled_from(["", "  # c", "\r", " "]))
compose_texts = st.one_of(inputs_from(COMPOSE_PORTS_SEED),
                          st.lists(st.one_of(mapping_lines, any_text), max_size=8).map(
                              lambda ls: "\n".join(ls) + "\n"))
port_sets = st.one_of(st.just({9100, 9200, 5050, 8080}), st.sets(st.integers(0, 70000), max_size=5))
envs = st.one_of(st.just({}), st.dictionaries(st.sampled_from(["PORT", "API_PORT", "X", "P"]),
                                              st.one_of(st.integers(0, 70000).map(str), digits_run, any_text),
                                              max_size=3))


@fuzz(300)
@given(text=compose_texts, ports=port_sets, env=envs,
       addr=st.one_of(st.just("127.0.0.1"), st.ip_addresses(v=4).map(str).map(
           lambda a: "127.0.0.1" if a == "0.0.0.0" else a)))
def test_ports_binding_never_raises_is_idempotent_and_leaves_nothing_exposed(text, ports, env, addr):
    before = misbound_mappings(text, ports, addr, env)
    assert set(exposed_mappings(text, ports, env)) <= set(before) or addr == "0.0.0.0"
    bound = bind_internal_ports(text, ports, addr, env)
    assert isinstance(bound, str) and isinstance(before, list)
    assert exposed_mappings(bound, ports, env) == []
    assert misbound_mappings(bound, ports, addr, env) == []
    assert bind_internal_ports(bound, ports, addr, env) == bound
    event(f"ports: {'rebound' if before else 'nothing exposed'}")
    # Only the misbound lines change; the rest of the file stays byte for byte.
    assert len(text.splitlines()) == len(bound.splitlines())
    changed = [(a, b) for a, b in zip(text.splitlines(), bound.splitlines(), strict=True) if a != b]
    assert [a.strip() for a, _ in changed] == before


# --------------------------------------------------------------------------------- address
# Near-keys (prefix 02/03/04, 32-34 bytes) reach the checks after base64 decoding.
near_keys = st.tuples(st.sampled_from([b"\x02", b"\x03", b"\x04"]), st.binary(min_size=31, max_size=33)).map(
    lambda t: base64.b64encode(t[0] + t[1]).decode())
b64ish = st.one_of(any_text, near_keys,
                   st.text(alphabet=string.ascii_letters + string.digits + "+/= \n", max_size=60),
                   st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
                   st.sampled_from([pubkey_b64(), '{"key": "x"}', "", "  "]).flatmap(text_mutant))
bech32ish = st.one_of(
    any_text, st.text(alphabet="qpzry9x8gf2tvdw0s3jn54khce6mua7l1QPZ", max_size=100),
    st.sampled_from([ADDR, ADDR.upper(), "a12uel5l", "1", "gonka1"]).flatmap(text_mutant))


@fuzz(300)
@given(b64=b64ish, text=bech32ish)
def test_address_functions_give_a_value_or_valueerror(b64, text):
    for fn, arg, typ in ((address.pubkey_bytes, b64, bytes), (address.cold_address, b64, str),
                         (address.bech32_decode, text, tuple), (address.decode_address, text, bytes)):
        try:
            out = fn(arg)
        except ValueError as e:
            assert str(e).strip()
            event(f"{fn.__name__}: ValueError")
            continue
        assert isinstance(out, typ)
        event(f"{fn.__name__}: value")
    if isinstance(out := _try(address.pubkey_bytes, b64), bytes):
        assert len(out) == 33 and address.bech32_decode(address.cold_address(b64))[0] == "gonka"


def _try(fn, *args):
    try:
        return fn(*args)
    except ValueError:
        return None


@fuzz(100)
@given(hrp=st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=10),
       data=st.lists(st.integers(0, 31), max_size=40))
def test_bech32_round_trip(hrp, data):
    enc = address.bech32_encode(hrp, data)
    if len(enc) <= 90:
        assert address.bech32_decode(enc) == (hrp, data)
        assert address.bech32_decode(enc.upper()) == (hrp, data)
