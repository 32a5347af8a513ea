"""Deploy benchmark on sandbox hosts: `python -m bench [--quick] [--download-seconds D]` (as root).

Measures, with the simulated hub acting as a CDN (each connection capped at 1/8 of the server's
link) and the link sized so that the model (16 shards + small files) takes D seconds at link speed:

  download_s           `fab download-model` alone on a prepared host (tools install + download)
  download_transfer_s  the download job's own time on that host (its state.json: started -> complete)
  link_limit_s         model bytes / link cap: the physical limit (= D)
  download_efficiency  link_limit_s / download_transfer_s
  sequential_download_s the same job with DOWNLOAD_WORKERS=1 (one file after another, the old way),
                       on a host of its own, side by side
  pull_s               the image pull job of the pipelined deploy, start to end (its state.json),
                       with the simulated registry throttled so the images take about D seconds
  deploy_s             a fresh full `fab deploy` (pipelined: the download overlaps phases 3-5)
  sequential_deploy_s  the same deploy with --no-pipeline (download first, as the seed flow does)
  rerun_s              a no-op `fab deploy` on the deployed host, rerun_remote_commands its
                       remote commands up to verify (from the deployer's own command log)
  single_host_s        = deploy_s
  fleet_s              `fab deploy --nodes ... --parallel N` on N fresh hosts

and prints a table; results go to bench/results.json. Timings are wall time of the real `fab`
subprocess, as a user would see it, except the transfer times, which are the job's own. The four
runs of the first round are side by side on four hosts, under the same machine load; each host
has a link of its own (the hub caps per client address), so their downloads do not slow each other.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from gonka_sim.hosts import host as sandbox
from gonka_sim.hosts.lab import SANDBOX_MODEL, Lab
from gonka_sim.network import repos
from gonka_sim.network.hub import HubServer, make_model_repo
from gonka_sim.network.pypi import PackageIndex, build_wheelhouse
from gonka_sim.network.seed import SeedServer

HERE = Path(__file__).resolve().parent
IDX0 = 60  # sandbox indexes used by the benchmark (tests use 100+)
SHARDS = 16
MODEL_BYTES = 32 << 20  # 16 shards of 2 MiB: big enough for 8 connections, small enough for 2 cores
CONNECTIONS_PER_LINK = 8  # the CDN caps each connection at 1/8 of the server's link
JOB_STATE = "/mnt/ssd/hf/.gonka-download/state.json"


def timed(lab: Lab, *args: str) -> tuple[float, object]:
    t0 = time.monotonic()
    r = lab.fab(*args, timeout=1800)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        sys.stdout.write(r.stdout[-3000:] + r.stderr[-2000:])
        raise SystemExit(f"benchmark step failed: fab {' '.join(args)} (exit {r.returncode})")
    return dt, r


def last_run(lab: Lab, key: str) -> dict:
    return json.loads((lab.nodes / key / "last_run.json").read_text())


def transfer_seconds(host) -> float:
    """The download job's own duration on `host`, from its state file (which must say complete)."""
    st = json.loads(host.read_text(JOB_STATE))
    if st.get("state") != "complete":
        raise SystemExit(f"benchmark: the download job on {host.name} ended {st.get('state')}: {st.get('error')}")
    return st["updated"] - st["started"]


def compose_image_bytes() -> int:
    """Bytes the simulated registry serves for the images of both compose files at the default ref."""
    import yaml  # noqa: PLC0415

    from gonka_sim.server import registry  # noqa: PLC0415

    join = repos.TEMPLATES / "gonka" / "deploy" / "join"
    images = set()
    for name in ("docker-compose.yml", "docker-compose.mlnode.yml"):
        for svc in (yaml.safe_load((join / name).read_text()).get("services") or {}).values():
            if svc.get("image") and not svc.get("profiles"):
                images.add(svc["image"])
    return sum(registry.image_size(i) for i in images)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small run for CI/dev (under a minute)")
    p.add_argument("--download-seconds", type=float, help="target model download and image pull time D (default 12, full 20)")
    p.add_argument("--fleet", type=int, default=4, help="hosts in the fleet run (default 4)")
    p.add_argument("--out", default=str(HERE / "results.json"))
    p.add_argument("--keep", metavar="DIR", help="keep the node dirs and logs of every run in DIR")
    args = p.parse_args(argv)
    missing = sandbox.missing_prerequisites()
    if missing:
        print("cannot run sandbox hosts here: " + "; ".join(missing), file=sys.stderr)
        return 2
    # D is at least the serial part of a deploy (phases 3-5 around the download, about 10 s here), so
    # the transfers are the critical path, as on a real server (where they take 10-60 minutes)
    d = args.download_seconds or (12.0 if args.quick else 20.0)
    t_start = time.monotonic()
    results: dict = {"download_target_s": d, "quick": args.quick}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="gonka-bench-") as tmp:
        tmp_path = Path(args.keep) if args.keep else Path(tmp)
        tmp_path.mkdir(parents=True, exist_ok=True)
        model = make_model_repo(SANDBOX_MODEL, total_size=MODEL_BYTES, shards=SHARDS)
        seed = stack.enter_context(SeedServer())
        hub = stack.enter_context(HubServer(repos=[model]))
        pypi = stack.enter_context(PackageIndex(build_wheelhouse()))
        provision = repos.provision_dir(tmp_path / "repos")
        base = tmp_path / "hosts"
        sandbox.sweep(base)
        hosts = []
        for i in range(max(4, args.fleet)):
            h = sandbox.SandboxHost.up(f"b{IDX0 + i}", IDX0 + i, base=base, provision=[provision])
            stack.callback(h.down)
            hosts.append(h)
        # each server's link carries the model in D; the CDN gives one connection 1/8 of it
        link = int(model.total_size / d)
        hub.configure(client_link_bps=link, bandwidth_bps=link // CONNECTIONS_PER_LINK)
        results["model_bytes"] = model.total_size
        results["model_files"] = len(model.files)
        results["link_bps"] = link
        results["connection_bps"] = link // CONNECTIONS_PER_LINK
        results["link_limit_s"] = round(model.total_size / link, 3)
        image_bytes = compose_image_bytes()
        for h in hosts:  # the registry throttled like the hub: pull and download of similar length
            h.write_file("/etc/gonka-sim/knobs.json", json.dumps({"registry_bps": int(image_bytes / d)}))
        results["image_bytes"] = image_bytes

        # Three measurements side by side on three fresh hosts, under the same load: the download
        # alone (`download-model` on a host whose phase 1 is done), the full pipelined deploy, and the
        # same deploy with --no-pipeline. Downloads are throttled per connection, so they do not
        # slow each other down; the CPU work (mostly the pipx install) shares the cores alike.
        labs = {name: Lab(tmp_path / name, seed=seed, hub=hub, pypi=pypi) for name in ("a", "b", "c", "e")}
        nodes = {"a": labs["a"].write_node(hosts[0], "bench-dl"), "b": labs["b"].write_node(hosts[1], "bench-a"),
                 "c": labs["c"].write_node(hosts[2], "bench-s"),
                 "e": labs["e"].write_node(hosts[3], "bench-seq", DOWNLOAD_WORKERS="1")}

        def download_alone(name: str) -> tuple[float, object]:
            timed(labs[name], "prepare-server", "--node", str(nodes[name]), "--yes")  # not timed
            return timed(labs[name], "download-model", "--node", str(nodes[name]), "--yes")

        jobs = {
            "download_s": lambda: download_alone("a"),
            "sequential_download_wall_s": lambda: download_alone("e"),
            "deploy_s": lambda: timed(labs["b"], "deploy", "--node", str(nodes["b"]), "--yes"),
            "sequential_deploy_s": lambda: timed(labs["c"], "deploy", "--node", str(nodes["c"]), "--yes",
                                                 "--no-pipeline"),
        }
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = {k: pool.submit(fn) for k, fn in jobs.items()}
            for k, f in futures.items():
                results[k] = f.result()[0]

        results["download_transfer_s"] = round(transfer_seconds(hosts[0]), 3)
        results["sequential_download_s"] = round(transfer_seconds(hosts[3]), 3)
        pull = json.loads(hosts[1].read_text("/var/lib/gonka-deploy/pull/state.json"))
        results["pull_s"] = round(pull["updated"] - pull["started"], 3)

        # the no-op rerun on the deployed host
        lab, node = labs["b"], nodes["b"]
        rerun_s, _ = timed(lab, "deploy", "--node", str(node), "--yes")
        run = last_run(lab, "bench-a")
        steps = {s["result"] for s in run["steps"]}
        cmds = [c for c in run["commands"] if c["step"] != "verify"]
        verify_s = sum(c["seconds"] for c in run["commands"] if c["step"] == "verify")
        results["rerun_s"] = round(rerun_s - verify_s, 3)
        results["rerun_with_verify_s"] = round(rerun_s, 3)
        results["rerun_remote_commands"] = len(cmds)
        results["rerun_all_skip"] = steps == {"skip"}

        # a fleet of fresh hosts in parallel
        for h in hosts[: args.fleet]:
            h.reset()
        lab = Lab(tmp_path / "d", seed=seed, hub=hub, pypi=pypi)
        for i, h in enumerate(hosts[: args.fleet]):
            lab.write_node(h, f"fleet-{i}")
        results["fleet_hosts"] = args.fleet
        results["fleet_s"], _ = timed(lab, "deploy", "--nodes", str(lab.nodes / "fleet-*.conf"), "--yes",
                                      "--parallel", str(args.fleet))
        results["single_host_s"] = results["deploy_s"]
    for k in ("download_s", "sequential_download_wall_s", "deploy_s", "sequential_deploy_s", "single_host_s",
              "fleet_s"):
        results[k] = round(results[k], 3)
    results["download_efficiency"] = round(results["link_limit_s"] / results["download_transfer_s"], 3)
    results["parallel_download_speedup"] = round(results["sequential_download_s"] / results["download_transfer_s"], 2)
    results["pipeline_ratio"] = round(results["deploy_s"] / results["download_s"], 3)
    results["critical_path_ratio"] = round(results["deploy_s"] / max(results["download_s"], results["pull_s"]), 3)
    results["sequential_ratio"] = round(results["sequential_deploy_s"] / results["download_s"], 3)
    results["fleet_ratio"] = round(results["fleet_s"] / results["single_host_s"], 3)
    results["bench_total_s"] = round(time.monotonic() - t_start, 1)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    width = max(len(k) for k in results)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in results.items()))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
