"""Simulated ``inferenced`` (Gonka's Cosmos SDK chain binary): the commands a host deploy uses.

keys add|show|list|delete (file/test keyrings, SDK prompts and output streams),
register-new-participant (fetch the consensus key from the node, POST to the seed, poll
/v2/participants for 30 s, then print the /v2/accounts balance),
config get|set, status, version. An error prints the command's usage, then the bare error on stderr,
and exits 1: upstream's root command sets SilenceErrors, so cobra prints no ``Error:`` line and
``main.go`` prints the error itself (inference-chain/cmd/inferenced/main.go, cmd/root.go).

One module on purpose (~490 lines): one CLI, one function per subcommand, sharing its flag
parsing and keyring context.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import tomllib

from . import chainkeys, simenv
from .keyring import KeyNotFound, Keyring, KeyringError, LineReader, prompt

HRP = "gonka"
DEFAULT_HOME = "/root/.inference"
VALUE_FLAGS = {"--home", "--keyring-backend", "--keyring-dir", "--output", "-o", "--node", "--chain-id",
               "--node-address", "--consensus-key", "--from", "--gas", "--fees", "--gas-prices", "--log_level",
               "--log-level", "--bech", "--algo", "--hd-path", "--coin-type", "--account", "--index",
               "--multisig-threshold", "--gas-adjustment", "--broadcast-mode", "--note"}
BOOL_FLAGS = {"-a", "--address", "--recover", "--no-backup", "--dry-run", "-y", "--yes", "-n", "--list-names",
              "-p", "--pubkey", "-i", "--interactive", "--long", "--generate-only", "--ledger", "--trace"}
MNEMONIC_NOTE = ("**Important** write this mnemonic phrase in a safe place.\n"
                 "It is the only way to recover your account if you ever forget your password.")


class CliError(Exception):
    pass


def parse(argv: list[str]) -> tuple[list[str], dict]:
    args: list[str] = []
    flags: dict = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            args.extend(argv[i + 1:])
            break
        if a.startswith("-") and a != "-":
            name, eq, val = a.partition("=")
            if name in VALUE_FLAGS:
                if not eq:
                    if i + 1 >= len(argv):
                        raise CliError(f"flag needs an argument: {name}")
                    val = argv[i + 1]
                    i += 1
                flags[name] = val
            elif name in BOOL_FLAGS:
                flags[name] = (val.lower() != "false") if eq else True
            elif name in ("-h", "--help"):
                flags["--help"] = True
            else:
                raise CliError(f"unknown flag: {name}" if name.startswith("--") else
                               f"unknown shorthand flag: {name[1:2]!r} in {a}")
        else:
            args.append(a)
        i += 1
    return args, flags


def flag(flags: dict, *names, default=None):
    for n in names:
        if n in flags:
            return flags[n]
    return default


class Ctx:
    def __init__(self, flags: dict):
        self.flags = flags
        self.reader = LineReader()
        self.volumes = json.loads(os.environ.get("GONKA_SIM_VOLUMES") or "[]")

    def path(self, cpath: str) -> Path:
        """A path as the command sees it, resolved through the container's volumes."""
        from .engine import map_container_path

        return map_container_path(self.volumes, cpath)

    @property
    def home(self) -> Path:
        return self.path(flag(self.flags, "--home", default=DEFAULT_HOME))

    def client_config(self) -> dict:
        try:
            return tomllib.loads((self.home / "config" / "client.toml").read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return {}

    def keyring(self) -> Keyring:
        backend = flag(self.flags, "--keyring-backend") or self.client_config().get("keyring-backend") or "os"
        kdir = flag(self.flags, "--keyring-dir")
        return Keyring(self.path(kdir) if kdir else self.home, backend, self.reader)

    def output(self) -> str:
        return flag(self.flags, "--output", "-o") or self.client_config().get("output") or "text"


def pubkey_json(pub_b64: str) -> str:
    return json.dumps({"@type": "/cosmos.crypto.secp256k1.PubKey", "key": pub_b64}, separators=(",", ":"))


def record_yaml(rec: dict) -> str:
    return (f"- address: {rec['address']}\n  name: {rec['name']}\n  pubkey: '{pubkey_json(rec['pub_key'])}'\n"
            "  type: local\n")


def record_json(rec: dict) -> dict:
    return {"name": rec["name"], "type": "local", "address": rec["address"], "pubkey": pubkey_json(rec["pub_key"])}


def fetch_key(kr: Keyring, ref: str) -> dict:
    """A key by name or by address, with the SDK's error when neither works."""
    try:
        return kr.get(ref)
    except KeyNotFound:
        pass
    try:
        _hrp, payload = chainkeys.bech32_decode(ref)
    except ValueError as e:
        raise CliError(f"{ref} is not a valid name or address: {e}") from None
    rec = kr.by_address_hex(payload.hex())
    if rec is None:
        raise CliError(f"{ref} is not a valid name or address: key with address {ref} not found: key not found")
    return rec


# ----------------------------------------------------------------------------- keys

def keys_add(ctx: Ctx, args: list[str]) -> int:
    if len(args) != 1:
        raise CliError(f"accepts 1 arg(s), received {len(args)}")
    name = args[0]
    kr = ctx.keyring()
    if kr.has(name):
        kr.get(name)  # the SDK reads the existing record first (asks the passphrase)
        prompt(f"override the existing name {name} [y/N]:")
        answer = (ctx.reader.readline() or "").strip().lower()
        if not answer.startswith("y"):
            raise CliError("aborted")
        kr.delete(name)
    recover = flag(ctx.flags, "--recover", default=False)
    if recover:
        prompt("> Enter your bip39 mnemonic")
        phrase = " ".join((ctx.reader.readline() or "").split())
        if not chainkeys.mnemonic_valid(phrase):
            raise CliError("invalid mnemonic")
    else:
        phrase = chainkeys.new_mnemonic()
    priv = chainkeys.private_key(phrase)
    pub = chainkeys.compressed_pubkey(priv)
    acct = chainkeys.account_id(pub)
    rec = {"name": name, "type": "local", "algo": "secp256k1", "pub_key": base64.b64encode(pub).decode(),
           "priv_key": f"{priv:064x}", "address": chainkeys.bech32(HRP, acct), "account_hex": acct.hex(),
           "created": simenv.rfc3339(nanos=False)}
    kr.put(rec, acct.hex())
    simenv.bump_counter("keys_add")
    if simenv.knob("fill_disk_after_keys_add"):
        # fault injection: the model download fills the data disk right after the keyring was written
        simenv.fill_filesystem(kr.dir)
    show_mnemonic = not recover and not flag(ctx.flags, "--no-backup", default=False)
    if ctx.output() == "json":
        out = record_json(rec)
        if show_mnemonic:
            out["mnemonic"] = phrase
        print(json.dumps(out, separators=(",", ":")), file=sys.stderr)  # cobra's Println goes to stderr
        return 0
    print(file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.write(record_yaml(rec))
    sys.stdout.flush()
    if show_mnemonic:
        sys.stderr.write(f"\n{MNEMONIC_NOTE}\n\n{phrase}\n")
    return 0


def keys_show(ctx: Ctx, args: list[str]) -> int:
    if len(args) != 1:
        raise CliError("show requires a key name or address" if not args else "multisig show is not simulated")
    rec = fetch_key(ctx.keyring(), args[0])
    if flag(ctx.flags, "-a", "--address", default=False):
        print(rec["address"])
    elif flag(ctx.flags, "-p", "--pubkey", default=False):
        print(pubkey_json(rec["pub_key"]))
    elif ctx.output() == "json":
        print(json.dumps(record_json(rec), separators=(",", ":")))
    else:
        sys.stdout.write(record_yaml(rec))
    return 0


def keys_list(ctx: Ctx, args: list[str]) -> int:
    kr = ctx.keyring()
    names = kr.names()
    if not names:
        print("No records were found in keyring", file=sys.stderr)
        return 0
    recs = [kr.get(n) for n in names]
    if flag(ctx.flags, "-n", "--list-names", default=False):
        for r in recs:
            print(r["name"])
    elif ctx.output() == "json":
        print(json.dumps([record_json(r) for r in recs], separators=(",", ":")))
    else:
        sys.stdout.write("".join(record_yaml(r) for r in recs))
    return 0


def keys_delete(ctx: Ctx, args: list[str]) -> int:
    kr = ctx.keyring()
    for name in args:
        rec = fetch_key(kr, name)
        if not flag(ctx.flags, "-y", "--yes", default=False):
            prompt("Key reference will be deleted. Continue? [y/N]:")
            if not (ctx.reader.readline() or "").strip().lower().startswith("y"):
                raise CliError("aborted")
        kr.delete(rec["name"])
        print("Key deleted forever (uh oh!)", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- registration

def http(method: str, url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(simenv.sim_url(url, os.environ.get("GONKA_SIM_SELF_IP")), data=body, method=method,
                                 headers={"Content-Type": "application/json"} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _dial_error(url: str, e: Exception) -> str:
    reason = getattr(e, "reason", e)
    text = "connect: connection refused" if isinstance(reason, ConnectionRefusedError) else str(reason)
    return f'Get "{url}": dial tcp: {text}'


def fetch_consensus_key() -> str:
    node = os.environ.get("DAPI_CHAIN_NODE__URL", "")
    if not node:
        raise CliError("failed to auto-fetch consensus key: DAPI_CHAIN_NODE__URL environment variable is not set. "
                       "Auto-fetch is only available when running from api/node containers. Please provide "
                       "consensus key manually using --consensus-key flag")
    url = node.rstrip("/") + "/status"
    try:
        status, body = http("GET", url)
        result = json.loads(body)["result"]
    except (OSError, ValueError, KeyError) as e:
        raise CliError("failed to auto-fetch consensus key: node RPC endpoint not responding. Please check if the "
                       f"node is properly configured: {_dial_error(url, e)}") from None
    pk = (result.get("validator_info") or {}).get("pub_key")
    if not pk or not pk.get("value"):
        raise CliError("failed to auto-fetch consensus key: node does not have validator information. Please "
                       "provide consensus key manually using --consensus-key flag")
    return pk["value"]


def check_ed25519(key: str, what: str) -> None:
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise CliError(f"{what}: invalid ED25519 public key: expected 32 bytes, got {len(raw)}")


def register(ctx: Ctx, args: list[str]) -> int:
    seed = (flag(ctx.flags, "--node-address") or "").strip()
    if len(args) != 2:
        raise CliError(f"accepts 2 arg(s), received {len(args)}")
    if not seed:
        raise CliError("node address is required (use --node-address flag)")
    node_url, account_pubkey = args
    try:
        address = chainkeys.address_from_b64(account_pubkey, HRP)
    except ValueError as e:
        raise CliError(f"failed to extract address from account public key: {e}") from None
    consensus = (flag(ctx.flags, "--consensus-key") or "").strip()
    if consensus:
        check_ed25519(consensus, "invalid consensus key provided")
        print("Using provided consensus key (validated)")
        source = "provided"
    else:
        print("No consensus key provided, attempting to auto-fetch from chain node...")
        sys.stdout.flush()
        consensus = fetch_consensus_key()
        check_ed25519(consensus, "auto-fetched consensus key is invalid")
        print("Successfully auto-fetched and validated consensus key from chain node")
        source = "auto-fetched"
    # upstream sends an empty worker key (register_participant_command.go, RegisterParticipantDto)
    body = {"address": address, "url": node_url, "validator_key": consensus, "pub_key": account_pubkey,
            "worker_key": ""}
    print("Registering new participant:")
    print(f"  Node URL: {node_url}")
    print(f"  Account Address: {address}")
    print(f"  Account Public Key: {account_pubkey}")
    print(f"  Validator Consensus Key: {consensus} ({source})")
    print(f"  Seed Node Address: {seed}")
    base = seed.rstrip("/")
    print(f"Sending registration request to {base}/v1/participants")
    sys.stdout.flush()
    if simenv.knob("register_timeout"):
        status, text = 200, b""  # knob: the request "succeeds" but never lands on the chain
    else:
        try:
            status, text = http("POST", base + "/v1/participants", json.dumps(body).encode(), timeout=30)
        except OSError as e:
            reason = getattr(e, "reason", e)
            raise CliError(f'failed to send HTTP request: Post "{base}/v1/participants": dial tcp: {reason}') from None
        simenv.bump_counter("register_posts")
    print(f"Response status code: {status}")
    if not 200 <= status < 300:
        raise CliError(f"server returned status {status}: {text.decode(errors='replace')}")
    print("Participant registration successful.")
    # the text is a literal upstream; the wait itself is the knob below
    print("Waiting for participant to be available (timeout: 30 seconds)...")
    sys.stdout.flush()
    url = f"{base}/v2/participants/{address}"
    # upstream waits 30 s; the sandbox harness lowers it (knob register_poll_s) to keep deploys quick
    timeout = float(simenv.knob("register_poll_s", REGISTER_POLL_S))
    found = poll_participant(url, timeout)
    if found is None:
        print(f"Warning: timeout after {_go_duration(timeout)} waiting for participant to be available")
        print(f"You can manually check your participant at {url}")
    else:
        print(f"Participant is now available at {url}")
    fetch_account_balance(f"{base}/v2/accounts/{address}")
    return 0


REGISTER_POLL_S = 30.0
"""upstream's wait for the participant (waitForParticipantAvailable's timeout)."""
POLL_TICK_S = 2.0
"""upstream's ticker: one GET (5 s timeout) per tick."""


def _go_string_field(obj: dict, name: str) -> str:
    """A `string` field as Go's encoding/json fills it: keys match case-insensitively (exactly, no
    snake_case folding), null leaves "", any other non-string type is an unmarshal error."""
    value = None
    for key, v in obj.items():
        if key == name or (value is None and key.lower() == name.lower()):
            value = v
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"json: cannot unmarshal {type(value).__name__} into Go struct field .participant.{name} "
                         "of type string")
    return value


def parse_participant(body: bytes) -> tuple[str, str, str] | None:
    """ParticipantResponse as upstream's CLI decodes it: (address, inferenceUrl, status), None on an
    unmarshal error. The API writes `inference_url` and an integer `status`, so this fails there."""
    try:
        data = json.loads(body)
        part = data.get("participant") if isinstance(data, dict) else None
        if part is None:
            return "", "", ""
        if not isinstance(part, dict):
            raise ValueError("participant is not an object")
        return (_go_string_field(part, "address"), _go_string_field(part, "inferenceUrl"),
                _go_string_field(part, "status"))
    except (ValueError, UnicodeDecodeError):
        return None


def poll_participant(url: str, timeout: float) -> tuple[str, str, str] | None:
    """waitForParticipantAvailable: a GET every 2 s until a 200 decodes with an address, or the
    timeout. Prints a dot per tick and `Found participant: ...` when found."""
    start = time.monotonic()
    tick = 1
    while True:
        next_tick = start + tick * POLL_TICK_S
        deadline = start + timeout
        if next_tick >= deadline:  # the timeout fires first (at a tie Go's select picks either)
            time.sleep(max(deadline - time.monotonic(), 0))
            return None
        time.sleep(max(next_tick - time.monotonic(), 0))
        tick += 1
        sys.stdout.write(".")
        sys.stdout.flush()
        try:
            status, body = http("GET", url, timeout=5)
        except OSError:
            continue
        if status != 200:
            continue
        found = parse_participant(body)
        if found is None or not found[0]:
            continue
        print()
        print(f"Found participant: {found[0]} (url: {found[1]}, status: {found[2]})")
        return found


def fetch_account_balance(url: str) -> None:
    """fetchAccountBalance: `Account balance: N` on a 200 that decodes; silent otherwise."""
    try:
        status, body = http("GET", url, timeout=5)
        data = json.loads(body) if status == 200 else None
    except (OSError, ValueError, UnicodeDecodeError):
        return
    if not isinstance(data, dict):
        return
    balance = data.get("balance", 0)
    if isinstance(balance, bool) or not isinstance(balance, int):
        return
    print(f"Account balance: {balance}")


def _go_duration(seconds: float) -> str:
    """time.Duration's String(): 30s, 1.5s, 500ms."""
    s = float(seconds)
    if s >= 1:
        return f"{int(s)}s" if s == int(s) else f"{s:g}s"
    ms = s * 1000
    return f"{int(ms)}ms" if ms == int(ms) else f"{ms:g}ms"


# ----------------------------------------------------------------------------- misc

def config_cmd(ctx: Ctx, args: list[str]) -> int:
    path = ctx.home / "config" / "client.toml"
    if args and args[0] in ("get", "set"):
        op, rest = args[0], args[1:]
        if not rest or rest[0] != "client":
            raise CliError("only the client config is simulated (config get|set client KEY [VALUE])")
        rest = rest[1:]
    else:
        op, rest = ("set" if len(args) == 2 else "get"), args
    cfg = ctx.client_config()
    if op == "get":
        if not rest:
            for k, v in cfg.items():
                print(f"{k} = {json.dumps(v)}")
            return 0
        if rest[0] not in cfg:
            raise CliError(f"key {rest[0]} not found in client config")
        print(cfg[rest[0]])
        return 0
    if len(rest) != 2:
        raise CliError("config set needs KEY VALUE")
    from .tomledit import set_value

    text = path.read_text() if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(set_value(text, "", rest[0], json.dumps(rest[1])))
    return 0


def status_cmd(ctx: Ctx, args: list[str]) -> int:
    node = flag(ctx.flags, "--node") or ctx.client_config().get("node") or "tcp://localhost:26657"
    url = node.replace("tcp://", "http://", 1).rstrip("/") + "/status"
    try:
        _s, body = http("GET", url)
        result = json.loads(body)["result"]
    except (OSError, ValueError, KeyError) as e:
        raise CliError(f"post failed: {_dial_error(url, e).replace('Get ', 'Post ', 1)}") from None
    print(json.dumps(result, separators=(",", ":")))
    return 0


def version_cmd(ctx: Ctx, args: list[str]) -> int:
    v = simenv.version_of(os.environ.get("GONKA_SIM_IMAGE", ""))
    if flag(ctx.flags, "--long", default=False):
        print(f"name: inference\nserver_name: inferenced\nversion: {v}\ncommit: sim\nbuild_tags: \"\"\n"
              "go: go version go1.22.8 linux/amd64")
    else:
        print(v)
    return 0


def tx_cmd(ctx: Ctx, args: list[str]) -> int:
    sender = flag(ctx.flags, "--from")
    if not sender:
        raise CliError("required flag(s) \"from\" not set")
    rec = fetch_key(ctx.keyring(), sender)
    raise CliError(f"failed to get account details: rpc error: code = NotFound desc = account {rec['address']} "
                   "not found: key not found")


COMMANDS = {
    ("keys", "add"): keys_add, ("keys", "show"): keys_show, ("keys", "list"): keys_list,
    ("keys", "delete"): keys_delete, ("register-new-participant",): register, ("config",): config_cmd,
    ("status",): status_cmd, ("version",): version_cmd, ("tx",): tx_cmd,
}


def usage(argv: list[str]) -> str:
    """A short form of cobra's usage block for the command in `argv`."""
    words = [a for a in argv if not a.startswith("-")][:2]
    cmd = " ".join(w for w in words if w in ("keys", "add", "show", "list", "delete", "register-new-participant",
                                              "config", "status", "version", "tx"))
    return (f"Usage:\n  inferenced {cmd or '[command]'} [flags]\n\nFlags:\n"
            f"  -h, --help   help for {cmd.split()[-1] if cmd else 'inferenced'}\n")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    simenv.log_call("inferenced", argv)
    try:
        args, flags = parse(argv)
        for words, fn in COMMANDS.items():
            if tuple(args[:len(words)]) == words:
                if words == ("tx",):
                    return fn(Ctx(flags), args[1:])
                return fn(Ctx(flags), args[len(words):])
        if not args:
            print("Usage:\n  inferenced [command]\n\nAvailable Commands:\n  config\n  keys\n  "
                  "register-new-participant\n  status\n  tx\n  version")
            return 0
        word = args[0] if args[0] != "keys" else " ".join(args[:2])
        raise CliError(f'unknown command "{word.split()[-1]}" for "inferenced{" keys" if args[0] == "keys" else ""}"'
                       "\nRun 'inferenced --help' for usage.")
    except (CliError, KeyringError) as e:
        # cobra prints the usage (SilenceUsage is not set), then main.go prints the error
        print(usage(argv), file=sys.stderr)
        print(e, file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
