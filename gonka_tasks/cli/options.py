"""The options node tasks share: their help texts and the `@node_task` decorator.

No task gets one-letter flags. Invoke would make them from first letters (`-w` for --wipe-disk,
`-c` for --accept-lost-mnemonic, `-i` for --install-prereqs, where `fab -i` before the task is the
identity file), and an option that can destroy data or trust a new key must be typed out.
Every option's help starts with the value it takes where Invoke shows none (repeatable options).
"""

from __future__ import annotations

import inspect

from fabric import task

COMMON_HELP = {
    "node": "PATH: node config, nodes/<name>.conf or a bare name (repeat --node for several nodes)",
    "nodes": "glob of node configs, e.g. 'nodes/*.conf'",
    "yes": "do not ask for confirmation (needed without a terminal)",
    "plan": "run the read-only checks for real and print what each step would do; change nothing",
    "accept_new_host_key": "forget the pinned SSH host key of this server and pin the one it shows now",
    "accept_lost_mnemonic": "go on although the warm key's mnemonic was never saved here (backs the keyring up "
                            "first and records it in warm_key.lost)",
    "wipe_disk": "allow formatting a DATA_DISK that is not blank (asks you to type the device name)",
    "update_repo": "move the gonka checkout to GONKA_REF when it is on another ref",
    "install_prereqs": "when the preflight finds Docker Engine, its Compose plugin or the NVIDIA container toolkit "
                       "missing (and nothing else), install them with apt from the vendors' repositories first",
}
ML_NODE_HELP = "PATH: the ML node's config (NODE_KIND=mlnode; its NETWORK_NODE names the network node)"

# Options that change what is irreversible or trusted: long names only, never a short form.
DANGEROUS = ("wipe_disk", "accept_lost_mnemonic", "accept_new_host_key")


def node_task(*, iterable: tuple[str, ...] = ("node",), **extra_help: str):
    """@task for node tasks: --node repeatable, the shared help for the options the function has, no
    one-letter flags."""
    def wrap(fn):
        params = inspect.signature(fn).parameters
        helps = {k: v for k, v in COMMON_HELP.items() if k in params}
        return task(iterable=list(iterable), help={**helps, **extra_help}, auto_shortflags=False)(fn)
    return wrap
