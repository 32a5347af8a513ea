"""Facts: what the server says, as data. Each module holds probe commands beside the pure parsers of
their output, and the irreversible decisions taken from them (format a disk, create a key).

Every parser takes command output (text) and returns plain data, or raises `FactError` with a
message: never anything else, whatever the input (the fuzz tests hold each to that, and fail when
one is added without a fuzz test). Nothing here runs a command or touches a connection.

  base.py      FactError, JSON read safely, values made safe to show
  disks.py     lsblk, blkid, the system disks; `decide_disk`
  mounts.py    the mount point probe and `decide_mount_point`; fstab lines; findmnt
  compose.py   `docker compose ps`, a compose file's services
  chain.py     the node's RPC status
  keys.py      `keys add`, addresses, mnemonics, the keyring; `decide_warm_key`
"""

from gonka_tasks.facts.base import (
    FactError,
    is_uuid,
    parse_kv_lines,
    shown,
)
from gonka_tasks.facts.chain import (
    RPC_STATUS_PROBE,
    RpcStatus,
    parse_rpc_status,
)
from gonka_tasks.facts.compose import (
    Container,
    compose_services,
    parse_compose_ps,
)
from gonka_tasks.facts.disks import (
    ROOT_DISKS_PROBE,
    BlockDevice,
    DiskDecision,
    DiskFacts,
    blkid_probe,
    decide_disk,
    disk_facts,
    lsblk_probe,
    parse_blkid_export,
    parse_lsblk,
    parse_root_disks,
)
from gonka_tasks.facts.keys import (
    KEYRING_LISTED,
    KEYRING_NO_DIR,
    KeyState,
    NewKey,
    PendingOutput,
    decide_warm_key,
    is_address,
    keyring_listing_probe,
    parse_address,
    parse_keyring_listing,
    parse_keys_add,
    parse_mnemonic,
    parse_pending_output,
)
from gonka_tasks.facts.mounts import (
    MP_SEP,
    MountPointDecision,
    decide_mount_point,
    findmnt_probe,
    fstab_entries_for,
    fstab_with_entry,
    mount_point_probe,
    parse_findmnt,
)

__all__ = [
    "RPC_STATUS_PROBE",
    "blkid_probe",
    "findmnt_probe",
    "lsblk_probe",
    "BlockDevice",
    "Container",
    "DiskDecision",
    "DiskFacts",
    "FactError",
    "KEYRING_LISTED",
    "KEYRING_NO_DIR",
    "KeyState",
    "MP_SEP",
    "MountPointDecision",
    "NewKey",
    "PendingOutput",
    "ROOT_DISKS_PROBE",
    "RpcStatus",
    "compose_services",
    "decide_disk",
    "decide_mount_point",
    "decide_warm_key",
    "disk_facts",
    "fstab_entries_for",
    "fstab_with_entry",
    "is_address",
    "is_address",
    "is_uuid",
    "keyring_listing_probe",
    "mount_point_probe",
    "parse_address",
    "parse_blkid_export",
    "parse_compose_ps",
    "parse_findmnt",
    "parse_keyring_listing",
    "parse_keys_add",
    "parse_kv_lines",
    "parse_lsblk",
    "parse_mnemonic",
    "parse_pending_output",
    "parse_root_disks",
    "parse_rpc_status",
    "shown",
]
