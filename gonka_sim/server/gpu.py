"""The simulated GPUs (knobs ``no_gpu``, ``gpu_count``, ``gpu_name``, ``gpu_memory_mib``) and nvidia-smi."""

from __future__ import annotations

import sys
import time

from . import simenv

DRIVER = "550.127.05"
CUDA = "12.4"
NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
             "Make sure that the latest NVIDIA driver is installed and running.")


def gpus() -> list[dict]:
    k = simenv.knobs()
    if k.get("no_gpu"):
        return []
    name = str(k.get("gpu_name", "NVIDIA H100 80GB HBM3"))
    mem = int(k.get("gpu_memory_mib", 81559))
    out = []
    for i in range(int(k.get("gpu_count", 1))):
        out.append({"index": i, "name": name, "memory_total_mib": mem, "memory_used_mib": 1,
                    "uuid": f"GPU-5f0c1e2a-7b3d-4c8e-9a{i:02d}-0d1e2f3a4b5c", "bus_id": f"00000000:{0x18 + i * 0x10:02X}:00.0",
                    "temperature": 34 + i, "power": 71, "power_cap": 700, "utilization": 0})
    return out


def table() -> str:
    """The default nvidia-smi screen (driver 550 layout, 91 columns)."""
    inner = 89

    def line(text: str) -> str:
        return "|" + text.ljust(inner) + "|"

    sep = "+-----------------------------------------+------------------------+----------------------+"
    out = [time.strftime("%a %b %d %H:%M:%S %Y") + "       ",
           "+" + "-" * inner + "+",
           line(f" NVIDIA-SMI {DRIVER:<22} Driver Version: {DRIVER:<14} CUDA Version: {CUDA}"),
           "|-----------------------------------------+------------------------+----------------------+",
           "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |",
           "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |",
           "|                                         |                        |               MIG M. |",
           "|=========================================+========================+======================|"]
    for g in gpus():
        left1 = f"{g['index']:>4}  {g['name']:<28}{'On':>5}  "
        out.append(f"|{left1[:41]:<41}|{g['bus_id']:>19} Off |{'0':>21} |")
        head = f" N/A   {g['temperature']}C    P0"
        left2 = head + f"{g['power']}W / {g['power_cap']:>4}W ".rjust(41 - len(head))
        mem = f"{str(g['memory_used_mib']) + 'MiB':>11} / {str(g['memory_total_mib']) + 'MiB':>9} "
        out.append(f"|{left2}|{mem}|{str(g['utilization']) + '%':>8}      Default |")
        out.append("|                                         |                        |             Disabled |")
        out.append(sep)
    out += [" " * (inner + 2),
            "+" + "-" * inner + "+",
            line(" Processes:"),
            "|  GPU   GI   CI        PID   Type   Process name                              GPU Memory |",
            "|        ID   ID                                                               Usage      |",
            "|" + "=" * inner + "|",
            line("  No running processes found"),
            "+" + "-" * inner + "+"]
    return "\n".join(out) + "\n"


QUERY_FIELDS = {
    "index": lambda g: str(g["index"]),
    "name": lambda g: g["name"],
    "gpu_name": lambda g: g["name"],
    "uuid": lambda g: g["uuid"],
    "gpu_uuid": lambda g: g["uuid"],
    "pci.bus_id": lambda g: g["bus_id"],
    "driver_version": lambda g: DRIVER,
    "memory.total": lambda g: f"{g['memory_total_mib']} MiB",
    "memory.used": lambda g: f"{g['memory_used_mib']} MiB",
    "memory.free": lambda g: f"{g['memory_total_mib'] - g['memory_used_mib']} MiB",
    "temperature.gpu": lambda g: str(g["temperature"]),
    "utilization.gpu": lambda g: f"{g['utilization']} %",
    "power.draw": lambda g: f"{g['power']:.2f} W",
    "count": lambda g: str(len(gpus())),
    "compute_cap": lambda g: "9.0",
    "persistence_mode": lambda g: "Enabled",
}


def nvidia_smi(argv: list[str]) -> int:
    simenv.log_call("nvidia-smi", argv)
    if simenv.knob("no_gpu"):
        print(NO_DRIVER)
        return 9
    query, fmt = None, ""
    for a in argv:
        if a.startswith("--query-gpu="):
            query = a.split("=", 1)[1]
        elif a.startswith("--format="):
            fmt = a.split("=", 1)[1]
    if "-L" in argv or "--list-gpus" in argv:
        for g in gpus():
            print(f"GPU {g['index']}: {g['name']} (UUID: {g['uuid']})")
        return 0
    if query is not None:
        fields = [f.strip() for f in query.split(",") if f.strip()]
        bad = [f for f in fields if f not in QUERY_FIELDS]
        if bad:
            print(f'Field "{bad[0]}" is not a valid field to query.\n')
            return 2
        opts = set(fmt.split(","))
        if "noheader" not in opts:
            print(", ".join(f"{f} [MiB]" if f.startswith("memory.") and "nounits" not in opts else f for f in fields))
        for g in gpus():
            vals = [QUERY_FIELDS[f](g) for f in fields]
            if "nounits" in opts:
                vals = [v.replace(" MiB", "").replace(" %", "").replace(" W", "") for v in vals]
            print(", ".join(vals))
        return 0
    if len(argv) and argv[0] not in ("-q", "--query", "-a"):
        unknown = [a for a in argv if a.startswith("-") and a not in ("-i", "--id")]
        if unknown:
            print('\nInvalid combination of input arguments. Please run \'nvidia-smi -h\' for help.\n')
            return 2
    sys.stdout.write(table())
    return 0
