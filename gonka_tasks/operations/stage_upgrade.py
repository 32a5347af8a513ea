"""Upgrade pre-staging on a deployed network node (`fab stage-upgrade`).

For each of the chain node and the API: download the release zip on the server (curl with retries),
check it with `sha256sum --check` against the published sum, unpack it into a temporary directory
beside the target (same filesystem), check the unpacked binary against its published sum when given,
then check the free space Cosmovisor's backup of `.inference/data` needs, and only then rename the
temporary directories to `cosmovisor/upgrades/<version>` (mode 0755, root-owned: both images run as
root). `current`, `genesis` and the running binaries are never touched.

One script does all of it: any failure (a download, a sum, the space) removes every temporary
directory and anything it placed, so a refusal leaves nothing behind. A record of each staged
directory (sha256sum lines) goes to `<MOUNT_POINT>/.gonka-deploy/upgrades/<version>/`; a rerun checks
the staged files against it with `sha256sum --check` and skips.
"""

from __future__ import annotations

import re
from pathlib import Path

from gonka_tasks.core import upgrade as up
from gonka_tasks.core.shell import q
from gonka_tasks.errors import DeployError
from gonka_tasks.phases.common import human, require

# unzip -j as the docs do it (flat, paths dropped), in python3 (a requirement of the server; unzip is
# not): regular files only, no name twice
EXTRACT = (
    "import os,shutil,stat,sys,zipfile\n"
    "z=zipfile.ZipFile(sys.argv[1]);d=sys.argv[2];os.makedirs(d)\n"
    "for m in z.infolist():\n"
    " if m.is_dir(): continue\n"
    " n=os.path.basename(m.filename)\n"
    " if n in ('','.','..') or stat.S_ISLNK(m.external_attr>>16): sys.exit('unsafe member '+repr(m.filename))\n"
    " with z.open(m) as s, open(os.path.join(d,n),'xb') as t: shutil.copyfileobj(s,t)\n"
)
CURL = "curl -fsSL --proto '=https,http' --retry 5 --retry-delay 3 --retry-all-errors --connect-timeout 20"
EXIT_FETCH, EXIT_MISMATCH, EXIT_SPACE, EXIT_ZIP, EXIT_RACE = 21, 22, 23, 24, 25


def manifest_path(run, version: str, item: up.StageItem) -> str:
    return f"{run.cfg.state_dir}/upgrades/{version}/{item.binary.key}.sha256"


def load_checksums(run, source: str | None, version: str) -> up.Checksums:
    """The published sums from a local file or an URL (fetched by the server, as the binaries are)."""
    if not source:
        raise DeployError("--checksums is required: the sha256 sums of the release zips",
                          "save the sums of the upgrade announcement (gonka docs, network updates) to a file, "
                          "e.g. --checksums v0.2.14.sha256")
    if re.match(r"https?://", source):
        url = up.validate_url(source, "--checksums")
        r = run.remote.probe(f"{CURL} --max-filesize {up.MAX_CHECKSUMS_BYTES} {q(url)}",
                             what=f"checksums from {url}", timeout=120)
        if not r.ok:
            raise DeployError(f"--checksums: the server could not download {url} (curl exit code {r.exit_code})",
                              "check the URL, or save the sums to a local file and pass its path")
        return up.parse_checksums(r.stdout, version, url)
    path = Path(source).expanduser()
    try:
        if path.stat().st_size > up.MAX_CHECKSUMS_BYTES:
            raise DeployError(f"--checksums: {path} is larger than {up.MAX_CHECKSUMS_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DeployError(f"--checksums: cannot read {path} ({type(e).__name__})", "give a readable text file") from None
    return up.parse_checksums(text, version, str(path))


def probe_targets(run, version: str, items: list[up.StageItem]) -> dict[str, str]:
    """{key: "absent" | "staged" | "foreign"} and the Cosmovisor dirs' state, in one round trip."""
    probes = {}
    for it in items:
        k, t = it.binary.key, q(it.target)
        probes[f"cv_{k}"] = f"test -d {q(it.cosmovisor)} && readlink {q(it.cosmovisor + '/current')}; true"
        probes[f"cvok_{k}"] = f"test -d {q(it.cosmovisor)}"
        probes[f"exists_{k}"] = f"test -d {t}"
        probes[f"manifest_{k}"] = f"cat {q(manifest_path(run, version, it))}"
        probes[f"check_{k}"] = (f"cd {t} && tail -n +2 {q(manifest_path(run, version, it))} | "
                                "sha256sum --check --strict --quiet")
        if it.bin_sha256:
            probes[f"bin_{k}"] = (f"cd {t} && printf '%s  %s\\n' {it.bin_sha256} {q(it.bin_rel)} | "
                                  "sha256sum --check --strict --quiet")
    res = run.remote.probe_many(probes, what=f"Cosmovisor's upgrades/{version} on the server")
    out: dict[str, str] = {}
    for it in items:
        k = it.binary.key
        require(res[f"cvok_{k}"].ok, f"no Cosmovisor directory at {it.cosmovisor} yet",
                "deploy the node first (`fab deploy`): the node and api containers create it on their first start")
        out[f"current_{k}"] = res[f"cv_{k}"].out
        bin_ok = res[f"bin_{k}"].ok if f"bin_{k}" in res else None
        out[k] = up.staged_verdict(it, res[f"exists_{k}"].ok, res[f"manifest_{k}"].stdout.strip(),
                                   res[f"check_{k}"].ok, bin_ok)
    return out


def stage_script(run, version: str, items: list[up.StageItem]) -> str:
    """The one server-side script: fetch, check, unpack every item, check the space, then place them."""
    join = run.cfg.join_dir
    rec_dir = f"{run.cfg.state_dir}/upgrades/{version}"
    lines = [
        "set -euo pipefail", "umask 022",
        "T=(); P=(); M=(); ok=0",
        'cleanup() { if [ "$ok" != 1 ]; then for p in ${P[@]+"${P[@]}"} ${M[@]+"${M[@]}"}; do rm -rf -- "$p"; done; fi; '
        'for t in ${T[@]+"${T[@]}"}; do rm -rf -- "$t"; done; }',
        "trap cleanup EXIT",
    ]
    for i, it in enumerate(items):
        b, t = it.binary, f'"$t{i}"'
        asset = q(b.asset)
        lines += [
            f"t{i}=$(mktemp -d {q(it.cosmovisor + '/.gd-stage-' + version + '.XXXXXX')}); T+=(\"$t{i}\")",
            f"echo 'downloading {b.asset}'",
            f"{CURL} -o {t}/{asset} {q(it.url)} || {{ echo GD_FETCH {asset}; exit {EXIT_FETCH}; }}",
            f"( cd {t} && printf '%s  %s\\n' {it.zip_sha256} {asset} | sha256sum --check --strict ) || "
            f"{{ echo GD_MISMATCH {asset} {it.zip_sha256} $(sha256sum < {t}/{asset} | cut -c1-64); exit {EXIT_MISMATCH}; }}",
            f"python3 -c {q(EXTRACT)} {t}/{asset} {t}/bin || {{ echo GD_ZIP {asset}; exit {EXIT_ZIP}; }}",
            f"rm -f -- {t}/{asset}",
            f"[ -f {t}/{q(it.bin_rel)} ] || {{ echo GD_NOBIN {asset} {q(b.name)}; exit {EXIT_ZIP}; }}",
        ]
        if it.bin_sha256:
            shown = q(f"{b.home}/cosmovisor/upgrades/{version}/{it.bin_rel}")
            lines.append(
                f"( cd {t} && printf '%s  %s\\n' {it.bin_sha256} {q(it.bin_rel)} | sha256sum --check --strict ) || "
                f"{{ echo GD_MISMATCH {shown} {it.bin_sha256} $(sha256sum < {t}/{q(it.bin_rel)} | cut -c1-64); "
                f"exit {EXIT_MISMATCH}; }}")
        # the daemons (the api zip carries inferenced too) 0755, libraries 0644, root-owned like the images
        lines += [
            f"chmod 0644 {t}/bin/*; for x in decentralized-api inferenced; do "
            f"[ -f {t}/bin/$x ] && chmod 0755 {t}/bin/$x; done; chmod 0755 {t} {t}/bin; chown -R 0:0 {t}",
        ]
    inf = f"{join}/.inference"
    lines += [
        f"data=$(du -sb -- {q(inf + '/data')} 2>/dev/null | cut -f1); data=${{data:-0}}",
        f"m=$((data / 10)); [ \"$m\" -lt {up.MARGIN_MIN} ] && m={up.MARGIN_MIN}; need=$((data + m))",
        f"avail=$(df -B1 --output=avail -- {q(inf)} | tail -n 1 | tr -d ' ')",
        f"[ \"$avail\" -ge \"$need\" ] || {{ echo GD_SPACE \"$avail\" \"$need\" \"$data\"; exit {EXIT_SPACE}; }}",
        f"mkdir -p -- {q(rec_dir)}; chmod 0700 -- {q(run.cfg.state_dir)}",
    ]
    for i, it in enumerate(items):
        m = q(manifest_path(run, version, it))
        lines += [
            f"{{ printf '%s  %s\\n' {it.zip_sha256} {q(it.binary.asset)}; ( cd \"$t{i}\" && sha256sum bin/* ); }} "
            f"> {m}.tmp && mv -f -- {m}.tmp {m}; M+=({m})",
        ]
    for i, it in enumerate(items):
        tgt = q(it.target)
        lines += [
            f"mkdir -p -- {q(it.cosmovisor + '/upgrades')}",
            f"[ ! -e {tgt} ] || {{ echo GD_EXISTS {tgt}; exit {EXIT_RACE}; }}",
            f"mv -T -- \"$t{i}\" {tgt}; P+=({tgt})",
        ]
    lines += ["sync", "ok=1", "echo GD_STAGED"]
    return "\n".join(lines)


def explain_failure(code: int, text: str, items: list[up.StageItem]) -> DeployError:
    """The script's marker line as an operator's message (nothing was placed in any of these cases)."""
    def marker(name: str) -> list[str]:
        found = [ln.split() for ln in text.splitlines() if ln.startswith(f"GD_{name} ")]
        return found[-1][1:] if found else []

    nothing = "nothing was placed (no upgrades/ directory, no temporary files left)"
    if code == EXIT_MISMATCH and len(marker("MISMATCH")) >= 2:
        f, expected, *actual = marker("MISMATCH")
        return DeployError(f"checksum mismatch for {f}: expected {expected}, got {actual[0] if actual else '?'}; "
                           f"{nothing}",
                           "check the sums against the upgrade announcement; a wrong download is refused, rerun "
                           "to fetch it again")
    if code == EXIT_SPACE and len(marker("SPACE")) == 3:
        avail, need, data = (int(x) for x in marker("SPACE"))
        return DeployError(f"not enough free space on the data disk for Cosmovisor's backup: {human(avail)} free, "
                           f"{human(need)} needed (.inference/data is {human(data)}, plus a margin of "
                           f"{human(need - data)}); {nothing}",
                           "remove old .inference/data-backup-* directories (docs FAQ) or grow the disk; upstream "
                           "recommends 250+ GB free on mainnet")
    if code == EXIT_FETCH:
        asset = (marker("FETCH") or ["a release asset"])[0]
        url = next((it.url for it in items if it.binary.asset == asset), "")
        return DeployError(f"downloading {asset} failed ({url}); {nothing}",
                           "check that the release exists for this version (or --releases-url), then rerun")
    if code == EXIT_ZIP:
        return DeployError(f"the release zip is not what Cosmovisor needs ({' '.join(marker('ZIP') or marker('NOBIN'))}); "
                           f"{nothing}")
    if code == EXIT_RACE:
        return DeployError(f"{' '.join(marker('EXISTS'))} appeared while staging; {nothing} by this run",
                           "rerun: it checks what is there")
    return DeployError(f"staging failed (exit code {code}); {nothing}", "see the log for the output, then rerun")


def stage_upgrade(run) -> None:
    """`fab stage-upgrade`: the chain and API binaries of --version in Cosmovisor's upgrades/ dirs."""
    version = up.validate_version(run.opt("version"))
    base = up.validate_url(run.opt("releases_url") or up.RELEASES_URL, "--releases-url")
    sums = load_checksums(run, run.opt("checksums"), version)
    items = up.plan(version, base, run.cfg.join_dir, sums)
    state: dict[str, str] = {}

    def check():
        state.clear()
        state.update(probe_targets(run, version, items))
        foreign = [it for it in items if state[it.binary.key] == "foreign"]
        if foreign:
            names = ", ".join(it.target for it in foreign)
            raise DeployError(f"{names} exists but does not match the given sums (or was not staged by this tool and "
                              "no binary sum was given to verify it); left as it is",
                              f"check it, or remove it (`rm -rf {foreign[0].target}`) and rerun")
        todo = [it.binary.name for it in items if state[it.binary.key] == "absent"]
        if not todo:
            return True, f"{version} staged and verified (sha256sum --check) for {', '.join(b.name for b in up.BINARIES)}"
        return False, f"to stage: {', '.join(todo)}"

    def action():
        todo = [it for it in items if state[it.binary.key] == "absent"]
        r = run.remote.run(stage_script(run, version, todo), what=f"download, check and place {version}",
                           timeout=3600, ok_codes=(0, EXIT_FETCH, EXIT_MISMATCH, EXIT_SPACE, EXIT_ZIP, EXIT_RACE))
        if r.exit_code != 0 or "GD_STAGED" not in r.stdout:
            raise explain_failure(r.exit_code, r.stdout + r.stderr, todo)

    run.steps.run(f"upgrade {version} pre-staged for Cosmovisor", check, action)
    if not run.plan:
        for it in items:
            run.log.info(f"{it.target}/{it.bin_rel} (zip sha256 {it.zip_sha256[:16]}...; current -> "
                         f"{state.get('current_' + it.binary.key) or '?'}, unchanged)")
