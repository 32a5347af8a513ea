"""NodeConfig: one node's `nodes/<name>.conf` (dotenv format) read, defaulted and validated.

`load` reads the file (`configfile`), fills defaults (`confkeys`), validates (`validation`) and
raises one `ConfigError` listing every problem as `KEY: what is wrong (got '...')`, secrets masked
however the line is mistyped (`secretnames`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gonka_tasks.config import nodekind, paths
from gonka_tasks.config.address import cold_address
from gonka_tasks.config.configfile import parse_text
from gonka_tasks.config.confkeys import (
    DEFAULTS,
    KNOWN_KEYS,
    SECRET_KEYS,
    TRUE_WORDS,
    apply_defaults,
    parse_model_args,
    split_ssh_keys,
)
from gonka_tasks.config.secretnames import looks_secret, mask
from gonka_tasks.config.validation import validate
from gonka_tasks.errors import ConfigError

# the names callers use, from the modules that hold them
__all__ = ["DEFAULTS", "KNOWN_KEYS", "SECRET_KEYS", "NodeConfig", "apply_defaults", "load", "looks_secret", "mask",
           "parse_text", "resolve_node_path", "validate"]


@dataclass(frozen=True)
class NodeConfig:
    """A validated node: typed values plus where its artefacts and logs go."""

    path: Path
    values: dict[str, str]
    warnings: tuple[str, ...] = ()
    # the project the task runs from (where its tasks.py/fabfile.py is): nodes/ and logs/ live there
    project_dir: Path = field(default=Path("."))
    hidden: tuple[str, ...] = ()  # values of mistyped secret keys (KEYRNG_PASSWORD=...): masked in the log too

    def __getitem__(self, key: str) -> str:
        return self.values[key]

    # server
    @property
    def server_ip(self) -> str:
        return self.values["SERVER_IP"]

    @property
    def ssh_host(self) -> str:
        """What SSH connects to: SSH_HOST (an address, a name or a ~/.ssh/config alias), else SERVER_IP."""
        return self.values.get("SSH_HOST") or self.server_ip

    @property
    def ssh_user(self) -> str:
        """SSH_USER, or "" when the node config leaves it to ~/.ssh/config (else root)."""
        return self.values["SSH_USER"]

    @property
    def ssh_port(self) -> int | None:
        return int(self.values["SSH_PORT"]) if self.values["SSH_PORT"] else None

    @property
    def ssh_key(self) -> str:
        return self.values["SSH_KEY"]

    # identity
    @property
    def key_name(self) -> str:
        return self.values["KEY_NAME"]

    @property
    def keyring_password(self) -> str:
        return self.values["KEYRING_PASSWORD"]

    @property
    def cold_address(self) -> str:
        return cold_address(self.values["ACCOUNT_PUBKEY"])

    @property
    def secrets(self) -> list[str]:
        """Every value the log must mask: the secret keys' values and those of mistyped secret keys."""
        found = [self.values[k] for k in sorted(SECRET_KEYS) if self.values.get(k)]
        return found + [h for h in self.hidden if h not in found]

    # network / model / disk, typed
    @property
    def api_port(self) -> int:
        return int(self.values["API_PORT"])

    @property
    def seed_api_url(self) -> str:
        return self.values["SEED_API_URL"].rstrip("/")

    @property
    def model_args(self) -> list[str]:
        return parse_model_args(self.values["MODEL_ARGS"])

    @property
    def max_concurrent(self) -> int:
        return int(self.values["MAX_CONCURRENT"])

    @property
    def admin_ssh_keys(self) -> list[str]:
        return split_ssh_keys(self.values["ADMIN_SSH_KEYS"])

    @property
    def persistent_peers(self) -> list[str]:
        return [p.strip() for p in self.values["PERSISTENT_PEERS"].split(",") if p.strip()]

    @property
    def mount_point(self) -> str:
        """MOUNT_POINT normalised (`/mnt//ssd/.` is `/mnt/ssd`): the one form every command and check uses."""
        return paths.normalise(self.values["MOUNT_POINT"]) or self.values["MOUNT_POINT"]

    @property
    def data_disk(self) -> str:
        return self.values["DATA_DISK"]

    @property
    def gonka_dir(self) -> str:
        return f"{self.mount_point}/gonka"

    @property
    def join_dir(self) -> str:
        return f"{self.mount_point}/gonka/deploy/join"

    @property
    def hf_home(self) -> str:
        return f"{self.mount_point}/hf"

    def seconds(self, key: str) -> int:
        return int(self.values[key])

    @property
    def state_dir(self) -> str:
        """The deployer's own markers on the server (outside the git checkout)."""
        return f"{self.mount_point}/.gonka-deploy"

    def flag(self, key: str) -> bool:
        return self.values[key].strip().lower() in TRUE_WORDS

    # several servers (nodekind.py)
    @property
    def kind(self) -> str:
        """`network` (chain + API, maybe its own ML node) or `mlnode` (an ML-node server)."""
        return nodekind.kind_of(self.values)

    @property
    def is_mlnode(self) -> bool:
        return self.kind == nodekind.MLNODE

    @property
    def private_ip(self) -> str:
        return self.values.get("PRIVATE_IP", "")

    # local places
    @property
    def artefacts(self) -> Path:
        """`nodes/<KEY_NAME>/`: generated files of this node (git-ignored)."""
        return self.project_dir / "nodes" / self.key_name

    @property
    def logs_dir(self) -> Path:
        """`logs/` of the project, wherever the node config itself lives."""
        return self.project_dir / "logs"

    def display_rows(self) -> list[tuple[str, str]]:
        """(key, value) rows for the parameter table, secrets masked."""
        return [(k, mask(k, self.values[k])) for k in DEFAULTS]


def resolve_node_path(node: str, nodes_dir: Path = Path("nodes")) -> Path:
    """`--node nodes/x.conf`, `--node x.conf` or a bare name `x` -> the config file path."""
    p = Path(node).expanduser()
    if p.suffix == ".conf" or "/" in node:
        return p
    return nodes_dir / f"{node}.conf"


def default_project(path: Path) -> Path:
    """The project of a config when no task said: the parent of its nodes/ folder, else the cwd."""
    return path.parent.parent if path.parent.name == "nodes" else Path.cwd()


def load(path: Path | str, project_dir: Path | None = None) -> NodeConfig:
    """Read, default and validate a node config file; raise ConfigError with every problem.

    Artefacts and logs go to `project_dir`'s nodes/ and logs/ (the project the task runs from),
    and a relative SSH_KEY starts there, wherever the config file itself is.
    """
    path = Path(path)
    project = project_dir or default_project(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError([f"file: not found; create it from nodes/example.conf (looked at {path})"], source)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([f"file: not UTF-8 text (byte {e.start}); save it as UTF-8"], source) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    parsed = parse_text(text, source)
    raw, problems = parsed.values, parsed.problems
    values, kind_warnings = nodekind.apply_kind(raw, apply_defaults(raw), path.stem)
    if not problems or raw:
        problems += validate(values, base_dir=project, secrets=parsed.secrets, raw=raw)
    if problems:
        # a required key that is missing because it was mistyped: say where the typo is
        typos = parsed.typos
        problems = [f"{p} ({typos[p.split(':')[0]]}: a typo?)"
                    if p.endswith(": required, missing or empty") and p.split(":")[0] in typos else p
                    for p in problems]
        raise ConfigError(problems, source)
    return NodeConfig(path=path, values=values, warnings=tuple(parsed.warnings + kind_warnings), project_dir=project,
                      hidden=tuple(dict.fromkeys(s for s in parsed.secrets if s)))
