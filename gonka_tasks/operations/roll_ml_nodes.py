"""`roll-ml-nodes`: each ML node of a network node to its config's MLNODE_IMAGE, one at a time.

Per node: the new image in a staged override file, pulled by the pull job (with progress) before
anything stops; disable, recreate, wait healthy, move the override into place, enable, next. An
unhealthy new image brings the node back up from the old files, re-enabled, and stops the roll.
"""

from __future__ import annotations

import contextlib

from gonka_tasks.core import render
from gonka_tasks.core.shell import COMPOSE_MLNODE, IMAGE_OVERRIDE, q
from gonka_tasks.errors import DeployError
from gonka_tasks.operations.add_ml_node import mlnode_service, record_launched, wait_healthy
from gonka_tasks.operations.ml_nodes import set_enabled
from gonka_tasks.operations.network_node import ml_configs_of, side_run
from gonka_tasks.phases import images
from gonka_tasks.phases.common import compose

NEXT_OVERRIDE = "gonka-deploy.mlnode-image.next.yml"  # the image being rolled out, until it proved healthy


def running_image(ml, service: str) -> str:
    """The image the ML node's container runs (its config's image reference)."""
    r = ml.remote.probe(compose(ml, f"ps -q {q(service)}", COMPOSE_MLNODE, source_env=False)
                        + " | head -n1 | xargs -r docker inspect --format '{{.Config.Image}}'")
    return r.out.splitlines()[0].strip() if r.ok and r.out else ""


def roll_one(run, net, ml) -> None:
    """One ML node to its MLNODE_IMAGE: pull (job, progress), disable, recreate, wait healthy, enable.
    An unhealthy new image: back to the old files (old image), running, enabled again; then stop."""
    cfg, join = ml.cfg, ml.cfg.join_dir
    nid, image = cfg["ML_NODE_ID"], cfg["MLNODE_IMAGE"]
    found = ml.remote.probe(f"cat {q(join + '/docker-compose.mlnode.yml')}")
    if not found.ok:
        raise DeployError(f"ML node {nid}: no docker-compose.mlnode.yml in {join} on {cfg.server_ip}",
                          f"deploy it first: fab add-ml-node --node {cfg.path.stem}")
    service = mlnode_service(found.stdout)
    old = running_image(ml, service)
    if not image or old == image:
        run.log.skip(f"ML node {nid}: runs {old or '?'} ({'MLNODE_IMAGE empty' if not image else 'as configured'})")
        return
    run.log.info(f"=== ML node {nid}: {old or '?'} -> {image}")
    nxt = (*COMPOSE_MLNODE, NEXT_OVERRIDE)
    ml.remote.write_file(f"{join}/{NEXT_OVERRIDE}", render.image_override(service, image), mode=0o644,
                         what=f"stage the image {image}")
    images.require_images(ml, nxt)  # the pull job, with progress, before anything stops
    set_enabled(run, net, nid, False)
    ml.remote.run(compose(ml, f"up -d {q(service)}", nxt), what=f"recreate {service} from {image}", timeout=1800)
    try:
        wait_healthy(ml)
    except DeployError as e:
        live = (*COMPOSE_MLNODE, IMAGE_OVERRIDE) if ml.remote.probe(f"test -f {q(join + '/' + IMAGE_OVERRIDE)}").ok \
            else COMPOSE_MLNODE
        ml.remote.run(compose(ml, f"up -d {q(service)}", live), what=f"back to {old or 'the previous image'}", timeout=1800)
        with contextlib.suppress(DeployError):
            wait_healthy(ml)
            set_enabled(run, net, nid, True)
        raise DeployError(f"ML node {nid}: {image} did not come up healthy ({e.message}); it runs {old or 'its old image'} "
                          "again; the roll stopped here, the ML nodes after it are untouched",
                          "check the image (`docker compose -f docker-compose.mlnode.yml logs` on that server), fix "
                          "MLNODE_IMAGE and rerun roll-ml-nodes") from None
    ml.remote.run(f"mv -f {q(join + '/' + NEXT_OVERRIDE)} {q(join + '/' + IMAGE_OVERRIDE)}",
                  what=f"make {image} the ML node's image")
    record_launched(ml)  # an add-ml-node rerun finds this the configuration it started
    set_enabled(run, net, nid, True)
    run.log.ok(f"ML node {nid} runs {image}")


def roll(run) -> None:
    """`roll-ml-nodes`: each ML node of this network node, one at a time, to its MLNODE_IMAGE."""
    if run.cfg.is_mlnode:
        raise DeployError("roll-ml-nodes takes the network node's config", "give --node <the network node's config>")
    configs = ml_configs_of(run.cfg)
    only = set(run.opt("ml_node") or [])
    configs = [c for c in configs if not only or c["ML_NODE_ID"] in only]
    if not configs:
        raise DeployError(f"no ML-node config in nodes/ names {run.cfg.path.name} as its NETWORK_NODE",
                          "create one per ML server (NODE_KIND=mlnode, NETWORK_NODE, PRIVATE_IP)")
    for c in configs:
        with side_run(run, c) as ml:
            roll_one(run, run, ml)
