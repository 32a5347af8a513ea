"""Secrets in a node config stay hidden however the line is mistyped, and every accepted secret is maskable."""

from __future__ import annotations

import io

import pytest

from gonka_tasks.config import KNOWN_KEYS, SECRET_KEYS, load, looks_secret, mask
from gonka_tasks.errors import ConfigError
from gonka_tasks.session.log import RunLog
from tests.helpers import PASSWORD, conf_text, fab, write_node

SECRET = "Zq9-s3cret.VALUE_77"
# how the key of a secret line gets mistyped (the cases, then more near-misses)
NAMES = ["KEYRING PASSWORD", "keyring_password", "export KEYRING-PASSWORD", "\u200bKEYRING_PASSWORD",
         "KEYRING_PASSWORD", "KEYRNG_PASSWORD", "PASSWORD", "KEYRING_PASS", "HF-TOKEN", "HFTOKEN", "hf_token",
         "Keyring.Password", "'KEYRING_PASSWORD'", "KEY\u200bRING_PASS\u2060WORD", "MY_SECRET", "WALLET_MNEMONIC",
         "SSH_PASSPHRASE", "HF_TOKN", "KEYRING_PASWORD"]
# how the rest of the line gets mistyped: fine, unterminated quotes, no `=`, a colon
SEPARATORS = ["={}", "='{}", '="{}', " {}", ":{}", " = '{}", "= {} # old"]


def outcome_text(path) -> tuple[str, bool]:
    """Everything `load` says about a config (problems or warnings), and whether it was refused."""
    try:
        cfg = load(path)
    except ConfigError as e:
        return str(e), True
    return "\n".join(cfg.warnings) + "\n" + "\n".join(v for _, v in cfg.display_rows()), False


@pytest.mark.parametrize("sep", SEPARATORS)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("with_password", [False, True])
def test_mistyped_secret_line_never_shows_its_value(tmp_path, name, sep, with_password):
    base = conf_text() if with_password else conf_text(KEYRING_PASSWORD=None)
    text, refused = outcome_text(write_node(tmp_path, base + name + sep.format(SECRET) + "\n"))
    assert SECRET not in text and SECRET[:8] not in text and SECRET[-8:] not in text, text
    if not with_password and name.strip("'") != "KEYRING_PASSWORD":  # else the line may well be fine
        assert refused and "KEYRING_PASSWORD: required" in text


@pytest.mark.parametrize("name", NAMES[:10])
def test_the_secret_of_a_mistyped_line_is_masked_where_else_it_shows(tmp_path, name):
    """A value pasted into another key too, or into a junk line, is masked there as well."""
    text = (conf_text(SERVER_IP=SECRET, PERSISTENT_PEERS=f"{SECRET}@1.2.3.4:5") + f"{name}={SECRET}\n"
            + f"junk line {SECRET}\n")
    msg, refused = outcome_text(write_node(tmp_path, text))
    assert refused and "SERVER_IP:" in msg and "PERSISTENT_PEERS:" in msg and "line 8:" in msg, msg
    assert SECRET not in msg and SECRET[:8] not in msg, msg


def test_configured_secrets_masked_in_other_keys_messages(tmp_path):
    token = "hf_" + "A1b2C3d4" * 4
    text = conf_text(HF_TOKEN=token, SEED_API_URL=f"http://{token}:99999", MODEL=PASSWORD + "/x",
                     ADMIN_SSH_KEYS=f"ssh-ed25519 {token}")
    msg, refused = outcome_text(write_node(tmp_path, text))
    assert refused and "SEED_API_URL:" in msg and "ADMIN_SSH_KEYS:" in msg, msg
    assert "MODEL:" in msg and token not in msg and PASSWORD not in msg, msg


def test_a_long_secret_is_masked_before_the_message_cuts_it(tmp_path):
    """Messages show at most 60 characters: the cut must not leave the start of a secret behind."""
    long_pw = "Q" + "w9Er7Ty5" * 10
    msg, refused = outcome_text(write_node(tmp_path, conf_text(KEYRING_PASSWORD=long_pw,
                                                               PUBLIC_URL=f"http://x:{long_pw}")))
    assert refused and "PUBLIC_URL:" in msg
    assert long_pw[:12] not in msg, msg


@pytest.mark.parametrize("key", ["KEYRNG_PASSWORD", "PASSWORD", "KEYRING_PASS", "HFTOKEN", "HF-TOKEN", "hf token",
                                 "keyring_password", "export KEYRING_PASSWORD", "Db_Passwd", "SEED_PASSPHRASE",
                                 "API_TOKEN", "CLIENT_SECRET", "MNEMONIC", "KEYRING-PASWORD", "HF_TOKN",
                                 "\ufeffKEYRING_PASSWORD", "\uff2b\uff25\uff39\uff32\uff29\uff2e\uff27_PASSWORD"])
def test_near_misses_look_like_secrets(key):
    assert looks_secret(key)
    assert mask(key, "value") == "***"


def test_no_ordinary_key_looks_like_a_secret():
    assert {k for k in KNOWN_KEYS if looks_secret(k)} == SECRET_KEYS


def test_mistyped_secret_values_are_masked_in_the_run_log(tmp_path):
    """A config that loads despite a mistyped secret line: that line's value is masked in the log too."""
    cfg = load(write_node(tmp_path, conf_text() + f"KEYRNG_PASSWORD={SECRET}\n"))
    assert any("KEYRNG_PASSWORD" in w and "KEYRING_PASSWORD" in w for w in cfg.warnings)
    log = RunLog(None, secrets=cfg.secrets, console=io.StringIO())
    assert log.redact(f"echo {SECRET}") == "echo ***"


# ------------------------------------------------------------------------ as a user sees it
CLI_CASES = ["KEYRING PASSWORD={}", "keyring_password={}", "export KEYRING-PASSWORD={}", "\u200bKEYRING_PASSWORD={}",
             "KEYRING_PASSWORD='{}", "KEYRNG_PASSWORD={}", "PASSWORD={}", "KEYRING_PASS={}", "HF-TOKEN={}",
             "HFTOKEN={}", "\u200bKEYRING_PASSWORD '{}", "keyring_password {}", "HF-TOKEN:{}"]


@pytest.mark.parametrize("line", CLI_CASES)
def test_fab_validate_never_prints_a_mistyped_secret(tmp_path, line):
    """No valid KEYRING_PASSWORD: exit 1 at validation, the problem named, the value nowhere."""
    write_node(tmp_path, conf_text(KEYRING_PASSWORD=None) + line.format(SECRET) + "\n", "x")
    r = fab("validate", "--node", "nodes/x.conf", "--yes", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in out
    assert "- KEYRING_PASSWORD: required" in out
    assert SECRET not in out and SECRET[:8] not in out, out


@pytest.mark.parametrize("line", [c for c in CLI_CASES if "=" in c and "'" not in c])
def test_fab_warnings_never_print_a_mistyped_secret(tmp_path, line):
    """With a valid password the config loads: its warnings name the line, not the value (log file too)."""
    write_node(tmp_path, conf_text() + line.format(SECRET) + "\n", "x")
    r = fab("validate", "--node", "nodes/x.conf", cwd=tmp_path)  # no --yes: stops at the question, no SSH
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in out
    assert "line 6" in out, out
    logs = list((tmp_path / "logs").glob("*.log"))
    for text in [out] + [p.read_text() for p in logs]:
        assert SECRET not in text and SECRET[:8] not in text, text


# ------------------------------------------------------------------------ HF_TOKEN
@pytest.mark.parametrize("token", ["x7Q", "hf_abc", "hf_abc def ghi jkl", "hf_caf\u00e9\u00e9\u00e9\u00e9\u00e9",
                                   "hf_" + "a" * 10 + "\t" + "a" * 10, "hf_" + "b" * 20 + "\nx"])
def test_bad_hf_token_is_refused_without_showing_it(tmp_path, token):
    with pytest.raises(ConfigError) as e:
        load(write_node(tmp_path, conf_text(HF_TOKEN=token)))
    msg = str(e.value)
    assert any(p.startswith("HF_TOKEN:") and "hf_..." in p for p in e.value.problems), msg
    assert "(got '***')" in msg and token.strip() not in msg


def test_good_hf_token_is_masked_in_table_and_log(tmp_path):
    token = "hf_" + "Zy8" * 8
    cfg = load(write_node(tmp_path, conf_text(HF_TOKEN=token)))
    assert dict(cfg.display_rows())["HF_TOKEN"] == "***"
    assert RunLog(None, secrets=cfg.secrets, console=io.StringIO()).redact(f"t={token}") == "t=***"


@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_short_secrets_are_masked_for_display(key):
    assert mask(key, "a") == "***" and mask(key, "") == ""


def test_password_padded_with_spaces_is_too_short(tmp_path):
    """The log masks a secret by what is between its end spaces: 12 characters must be there."""
    with pytest.raises(ConfigError) as e:
        load(write_node(tmp_path, conf_text(KEYRING_PASSWORD="     ab     ")))
    assert "KEYRING_PASSWORD: too short: 2 characters" in str(e.value)
