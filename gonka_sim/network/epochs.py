"""Epochs, their phases and their participants with ML nodes, on a clock the tests drive.

Upstream (decentralized-api v0.2.13): ``GET /v1/epochs/latest`` (public/get_epoch.go, EpochResponse:
block_height, latest_epoch{index, poc_start_block_height}, phase, epoch_stages, next_epoch_stages,
epoch_params, is_confirmation_poc_active) and ``GET /v1/epochs/{current|N}/participants``
(public/get_participants_handler.go: active_participants{participants[{index, validator_key,
weight, inference_url, models, ml_nodes[{ml_nodes[{node_id, throughput, poc_weight,
timeslot_allocation}]}]}], epoch_id, ...}, addresses, excluded_participants; epoch 0 is a 400).
Phases are the chain's EpochPhase names: PoCGenerate, PoCGenerateWindDown, PoCValidate,
PoCValidateWindDown, Inference.

Nothing moves by itself: `advance_epoch()` is the PoC that starts the next epoch, `set_phase()`
puts the current one in a phase. Which ML nodes join the new epoch follows the broker's
ShouldBeOperational (broker/broker.go) for the PoC phase of the new epoch: an enabled node
does (unless it was enabled in that very epoch), a disabled one does not; and only if its ML node
answered its health check (a node that produces no PoC gets no weight). The api containers tell
the seed their nodes' admin state through ``POST /gonka-sim/v1/ml-nodes`` (a stand-in for the PoC
batches they would submit; no upstream route).
"""

from __future__ import annotations

import threading
import time
from typing import Any

PHASES = ("PoCGenerate", "PoCGenerateWindDown", "PoCValidate", "PoCValidateWindDown", "Inference")
ALIASES = {"poc": "PoCGenerate", "generate": "PoCGenerate", "validate": "PoCValidate", "inference": "Inference"}
EPOCH_PARAMS = {"epoch_length": 15391, "epoch_multiplier": 1, "epoch_shift": 0, "default_unit_of_compute_price": 100,
                "poc_stage_duration": 60, "poc_exchange_duration": 1, "poc_validation_delay": 2,
                "poc_validation_duration": 20, "set_new_validators_delay": 1, "inference_validation_cutoff": 0,
                "inference_pruning_epoch_threshold": 5, "inference_pruning_max": 1000, "poc_pruning_max": 1000,
                "poc_slot_allocation": {"value": "5", "exponent": -1}, "confirmation_poc_safety_window": 50}


def should_be_operational(admin: dict, latest_epoch: int, phase: str) -> bool:
    """broker.ShouldBeOperational."""
    if admin.get("enabled", True):
        return latest_epoch > int(admin.get("epoch", 0)) or phase == "Inference"
    return int(admin.get("epoch", 0)) >= latest_epoch


class EpochClock:
    """The chain's epoch state as the seed serves it. Thread-safe."""

    def __init__(self, first_index: int = 1, height=lambda: 0):
        self.lock = threading.Lock()
        self.height = height
        self.index = first_index
        self.phase = "Inference"
        self.poc_start = height()
        self.reports: dict[str, dict[str, Any]] = {}  # participant address -> last api report
        self.participants: dict[int, list[dict[str, Any]]] = {first_index: []}

    # -- what tests call ---------------------------------------------------------------------------

    def set_phase(self, phase: str) -> str:
        name = ALIASES.get(phase.lower(), phase) if isinstance(phase, str) else phase
        if name not in PHASES:
            raise ValueError(f"phase {phase!r}: one of {', '.join(PHASES)} (or poc/validate/inference)")
        with self.lock:
            self.phase = name
        return name

    def advance_epoch(self) -> int:
        """The PoC of the next epoch happened: its participants are the reported operational nodes."""
        with self.lock:
            new = self.index + 1
            self.participants[new] = [p for a, r in sorted(self.reports.items())
                                      if (p := self._participant(a, r, new)) is not None]
            self.index, self.phase, self.poc_start = new, "Inference", self.height()
            return new

    def members(self, epoch: int | None = None) -> dict[str, list[str]]:
        """{participant address: [ML node ids]} of an epoch (default: the current one)."""
        with self.lock:
            rows = self.participants.get(self.index if epoch is None else epoch, [])
            return {p["index"]: [n["node_id"] for g in p["ml_nodes"] for n in g["ml_nodes"]] for p in rows}

    def report(self, body: dict[str, Any]) -> None:
        """An api's nodes and their admin state (POST /gonka-sim/v1/ml-nodes)."""
        address = str(body.get("address") or "")
        if not address:
            raise ValueError("address is required")
        with self.lock:
            self.reports[address] = {**body, "at": time.time()}

    # -- what the routes answer --------------------------------------------------------------------

    def _participant(self, address: str, rep: dict[str, Any], epoch: int) -> dict[str, Any] | None:
        nodes = [n for n in rep.get("nodes") or []
                 if n.get("healthy") and should_be_operational(n.get("admin_state") or {}, epoch, "PoCGenerate")]
        if not nodes:
            return None  # no ML node, no PoC weight: not in the epoch (docs host/multiple-nodes)
        models = sorted({m for n in nodes for m in n.get("models") or []})
        groups = [{"ml_nodes": [{"node_id": n["id"], "throughput": 1000, "poc_weight": 10,
                                 "timeslot_allocation": [True, False]}
                                for n in nodes if m in (n.get("models") or [])]} for m in models]
        return {"index": address, "validator_key": rep.get("validator_key", ""), "weight": 10 * len(nodes),
                "inference_url": rep.get("url", ""), "models": models, "seed": None, "ml_nodes": groups,
                "voting_powers": []}

    def latest(self) -> dict[str, Any]:
        h = self.height()
        with self.lock:
            stages = self._stages(self.index, self.poc_start)
            nxt = self._stages(self.index + 1, self.poc_start + EPOCH_PARAMS["epoch_length"])
            return {"block_height": h, "latest_epoch": {"index": self.index, "poc_start_block_height": self.poc_start},
                    "phase": self.phase, "epoch_stages": stages, "next_epoch_stages": nxt,
                    "epoch_params": dict(EPOCH_PARAMS), "is_confirmation_poc_active": False}

    @staticmethod
    def _stages(index: int, start: int) -> dict[str, Any]:
        p = EPOCH_PARAMS
        gen_end = start + p["poc_stage_duration"]
        val_start = gen_end + p["poc_validation_delay"]
        val_end = val_start + p["poc_validation_duration"]
        return {"epoch_index": index, "poc_start": start, "poc_generation_wind_down": gen_end - 4,
                "poc_generation_end": gen_end, "poc_validation_start": val_start,
                "poc_validation_wind_down": val_end - 4, "poc_validation_end": val_end,
                "set_new_validators": val_end + 1, "claim_money": val_end + 2, "inference_validation_cutoff": 0,
                "next_poc_start": start + p["epoch_length"],
                "poc_exchange_window": {"start": start + 1, "end": gen_end + 1},
                "poc_validation_exchange_window": {"start": val_start + 1, "end": val_end + 1}}

    def participants_json(self, which: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            epoch = self.index if which == "current" else int(which)
            if epoch == 0:
                return 400, {"message": "Epoch enumeration starts with 1"}
            rows = [dict(p) for p in self.participants.get(epoch, [])]
        return 200, {"active_participants": {"participants": rows, "epoch_group_id": epoch, "poc_start_block_height": 0,
                                             "effective_block_height": 0, "created_at_block_height": 0,
                                             "epoch_id": epoch},
                     "addresses": [p["index"] for p in rows], "active_participants_bytes": "", "proof_ops": None,
                     "validators": [], "block": None, "excluded_participants": []}
