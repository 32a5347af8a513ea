"""Upgrade pre-staging, the pure parts: the version, the published checksums, where each binary goes.

Cosmovisor runs both daemons of a network node: the chain node (`DAEMON_HOME=/root/.inference`,
`DAEMON_NAME=inferenced`) and the API (`/root/.dapi`, `decentralized-api`); at an upgrade height it
switches `cosmovisor/current` to `cosmovisor/upgrades/<plan name>/` and runs `bin/<DAEMON_NAME>`
from there. Pre-staging puts those directories in place ahead of time, from the release assets
(`inferenced-amd64.zip`, `decentralized-api-amd64.zip` under
`https://github.com/gonka-ai/gonka/releases/download/release%2F<version>/`), checked against the
sha256 sums the upgrade announcement publishes. Everything here is pure; the server side is
`phases/upgrade.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gonka_tasks.errors import DeployError

RELEASES_URL = "https://github.com/gonka-ai/gonka/releases/download"
"""Where upstream's release workflow publishes the upgrade zips (tag `release/<version>`)."""
ARCH = "amd64"
MARGIN_MIN = 1 << 30
"""Free space kept beyond the size of the chain's data dir (Cosmovisor copies it before an upgrade)."""
MAX_CHECKSUMS_BYTES = 64 * 1024

# v0.2.14, v0.2.15-post5, v0.2.10-post7: upstream's plan names (inference-chain/app/upgrades/*/constants.go
# and the docs' announcements); nothing else reaches a path or a command line
VERSION_RE = re.compile(r"v\d{1,4}\.\d{1,4}\.\d{1,4}(?:-[A-Za-z0-9]{1,32}(?:\.[A-Za-z0-9]{1,32}){0,3})?")
SUM_LINE = re.compile(r"(?P<sum>[0-9a-fA-F]{64}) [ *]?(?P<name>\S+)")
# upstream's `make build-for-upgrade` writes `<zip> <sum>` lines into public-html/v2/checksums.txt
SUM_LINE_REVERSED = re.compile(r"(?P<name>\S+\.zip) (?P<sum>[0-9a-fA-F]{64})")


@dataclass(frozen=True)
class Binary:
    """One Cosmovisor-run daemon: its home on the data disk and its release asset."""

    key: str  # "chain" | "api"
    home: str  # relative to deploy/join (a bind mount of /root/<home> in the container)
    name: str  # DAEMON_NAME: the file Cosmovisor runs from bin/
    asset: str  # the release asset

    @property
    def short_zip(self) -> str:
        """The name the docs' pre-download commands save the asset under (`wget -O inferenced.zip`)."""
        return f"{self.name}.zip"


BINARIES = (
    Binary("chain", ".inference", "inferenced", f"inferenced-{ARCH}.zip"),
    Binary("api", ".dapi", "decentralized-api", f"decentralized-api-{ARCH}.zip"),
)


def validate_version(value: object) -> str:
    """The upgrade name as Cosmovisor's directory (`v0.2.14`); anything else is refused."""
    text = "" if value is None else str(value)
    if not VERSION_RE.fullmatch(text):
        shown = text if len(text) <= 60 else text[:60] + "..."
        raise DeployError(f"--version: not an upgrade name like v0.2.14 or v0.2.15-post5 (got {shown!r})",
                          "give the plan name of the upgrade proposal, e.g. --version v0.2.14")
    return text


def asset_url(base: str, version: str, asset: str) -> str:
    """`<base>/release%2F<version>/<asset>`, as the docs' pre-download commands spell it."""
    return f"{base.rstrip('/')}/release%2F{version}/{asset}"


def validate_url(value: str, what: str) -> str:
    """An http(s) URL without whitespace, quotes or control characters (it goes to curl, quoted)."""
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-]+(?::\d{1,5})?(?:/[A-Za-z0-9._~%!$&()*+,;=:@/\-?]*)?", value or ""):
        raise DeployError(f"{what}: not an http(s) URL (got {value[:80]!r})", "give a URL like https://host/path")
    return value


@dataclass
class Checksums:
    """sha256 of each zip (required) and of each unpacked binary (when published), by Binary.key."""

    zips: dict[str, str] = field(default_factory=dict)
    bins: dict[str, str] = field(default_factory=dict)


def _classify(name: str, version: str) -> tuple[str, str] | None:
    """("zip" | "bin", key) for a file name a checksums line may carry, else None."""
    for b in BINARIES:
        if name in (b.asset, b.short_zip):
            return "zip", b.key
        if name in (b.name, f"bin/{b.name}", f"{b.home}/cosmovisor/upgrades/{version}/bin/{b.name}"):
            return "bin", b.key
    return None


def parse_checksums(text: str, version: str, source: str = "checksums") -> Checksums:
    """Read `<sha256>  <file>` lines (sha256sum's format; one space, as the docs print them, or two;
    `*` for binary mode) or `<file>.zip <sha256>` (upstream's build output). Blank lines and `#`
    comments are skipped; any other line, an unknown file, a conflicting duplicate or a missing zip
    sum refuses the whole file."""
    if len(text.encode("utf-8", "replace")) > MAX_CHECKSUMS_BYTES:
        raise DeployError(f"{source}: larger than {MAX_CHECKSUMS_BYTES} bytes; not a checksums file")
    out = Checksums()
    problems: list[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line or line.lstrip().startswith("#"):
            continue
        m = SUM_LINE.fullmatch(line) or SUM_LINE_REVERSED.fullmatch(line)
        if not m:
            problems.append(f"line {n}: not `<64 hex digits>  <file>` (got {line[:80]!r})")
            continue
        name, digest = m["name"], m["sum"].lower()
        kind = _classify(name, version)
        if kind is None:
            wanted = ", ".join(f"{b.asset}, {b.home}/cosmovisor/upgrades/{version}/bin/{b.name}" for b in BINARIES)
            problems.append(f"line {n}: unknown file {name!r} (expected one of {wanted})")
            continue
        table = out.zips if kind[0] == "zip" else out.bins
        if table.get(kind[1], digest) != digest:
            problems.append(f"line {n}: a second, different sum for {name}")
        table[kind[1]] = digest
    for b in BINARIES:
        if b.key not in out.zips and not problems:
            problems.append(f"no sum for {b.asset} (a line `<sha256>  {b.asset}`)")
    if problems:
        raise DeployError(f"{source}: " + "; ".join(problems),
                          "use the sums of the upgrade announcement (gonka docs, network updates), one "
                          "`<sha256>  <file>` line each")
    return out


@dataclass(frozen=True)
class StageItem:
    """One binary to stage: where it comes from, what it must hash to, where it goes."""

    binary: Binary
    url: str
    zip_sha256: str
    bin_sha256: str | None
    cosmovisor: str  # <join>/<home>/cosmovisor
    target: str  # <cosmovisor>/upgrades/<version>

    @property
    def bin_rel(self) -> str:
        """The binary relative to the target (what the sums files name)."""
        return f"bin/{self.binary.name}"


def plan(version: str, base_url: str, join_dir: str, sums: Checksums) -> list[StageItem]:
    """The two binaries to stage for `version` under `join_dir` (deploy/join on the data disk)."""
    items = []
    for b in BINARIES:
        cv = f"{join_dir}/{b.home}/cosmovisor"
        items.append(StageItem(b, asset_url(base_url, version, b.asset), sums.zips[b.key], sums.bins.get(b.key),
                               cv, f"{cv}/upgrades/{version}"))
    return items


def backup_need(data_bytes: int) -> int:
    """Free bytes Cosmovisor's pre-upgrade copy of `.inference/data` needs: its size plus a margin
    (a tenth, at least 1 GiB) for the chain's growth until the upgrade height."""
    return data_bytes + max(data_bytes // 10, MARGIN_MIN)


def manifest_text(item: StageItem, files: dict[str, str]) -> str:
    """The deployer's record of a staged dir: the zip's sum and each unpacked file's, sha256sum lines
    (relative to the target) that `sha256sum --check` reads back on a rerun."""
    lines = [f"{item.zip_sha256}  {item.binary.asset}"]
    lines += [f"{digest}  {rel}" for rel, digest in sorted(files.items())]
    return "\n".join(lines) + "\n"


def staged_verdict(item: StageItem, exists: bool, manifest: str, check_ok: bool, bin_check_ok: bool | None) -> str:
    """What a rerun finds at the target: "absent", "staged" (verified) or "foreign" (there, not verifiable
    as these sums: never touched).

    `manifest`: the deployer's record ("" when none); `check_ok`: `sha256sum --check` of its file
    lines passed; `bin_check_ok`: the published binary sum checked against the file (None: no sum)."""
    if not exists:
        return "absent"
    if bin_check_ok is False:
        return "foreign"
    first = manifest.splitlines()[0] if manifest else ""
    if manifest and check_ok and first == f"{item.zip_sha256}  {item.binary.asset}":
        return "staged"
    if not manifest and bin_check_ok:
        return "staged"  # staged by hand (the docs' commands), and the published binary sum matches
    return "foreign"
