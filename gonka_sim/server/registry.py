"""The simulated image registry's manifests: what `docker manifest inspect -v` reads.

Sizes are nominal figures for the v0.2.13 images (compressed layer bytes, the number a pull
transfers); the ML node's CUDA + vLLM image dominates. Unknown images get a small default, as a
plain service image would. Knob ``image_sizes`` ({"<image ref or name part>": bytes}) overrides.
"""

from __future__ import annotations

import hashlib
import time

from . import simenv

GB = 10 ** 9
MB = 10 ** 6
# name part of the reference (no registry, no tag) -> compressed bytes
NOMINAL = {
    "product-science/inferenced": 310 * MB,
    "product-science/api": 260 * MB,
    "product-science/versiond": 40 * MB,
    "product-science/tmkms-softsign-with-keygen": 45 * MB,
    "product-science/bridge": 1_400 * MB,
    "product-science/proxy": 70 * MB,
    "product-science/proxy-ssl": 90 * MB,
    "product-science/explorer": 120 * MB,
    "gonka-ai/mlnode": 19 * GB,
    "nginx": 70 * MB,
}
DEFAULT_SIZE = 80 * MB
LAYERS = 6
MULTI_ARCH = {"nginx"}  # official library images list several platforms


def name_of(image: str) -> str:
    ref = image.split("@", 1)[0]
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        ref = rest
    if ":" in ref.rsplit("/", 1)[-1]:
        ref = ref.rsplit(":", 1)[0]
    return ref.removeprefix("library/")


def image_size(image: str) -> int:
    sizes = simenv.knob("image_sizes") or {}
    for key in (image, name_of(image)):
        if key in sizes:
            return int(sizes[key])
    return NOMINAL.get(name_of(image), DEFAULT_SIZE)


def _digest(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("/".join(parts).encode()).hexdigest()


def _platform_manifest(image: str, arch: str) -> dict:
    total = image_size(image)
    sizes = [total // LAYERS] * (LAYERS - 1)
    sizes.append(total - sum(sizes))
    layers = [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": n,
               "digest": _digest(image, arch, str(i))} for i, n in enumerate(sizes)]
    return {
        "Ref": f"{image}@{_digest(image, arch)}",
        "Descriptor": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                       "digest": _digest(image, arch), "size": 1578,
                       "platform": {"architecture": arch, "os": "linux"}},
        "SchemaV2Manifest": {"schemaVersion": 2,
                             "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                             "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                        "size": 7023, "digest": _digest(image, arch, "config")},
                             "layers": layers},
    }


def manifest(image: str, verbose: bool = True) -> dict | list | None:
    """The answer of `docker manifest inspect [-v] IMAGE` (a list for multi-platform images)."""
    arches = ["amd64", "arm64"] if name_of(image) in MULTI_ARCH else ["amd64"]
    if not verbose:
        if len(arches) == 1:
            return _platform_manifest(image, "amd64")["SchemaV2Manifest"]
        return {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                "manifests": [_platform_manifest(image, a)["Descriptor"] for a in arches]}
    docs = [_platform_manifest(image, a) for a in arches]
    return docs if len(docs) > 1 else docs[0]


# ----------------------------------------------------------------------------- pulling
class PullError(Exception):
    """What the daemon answers when a pull fails (the CLI prints it after `Error response from daemon: `)."""


def registry_host(image: str) -> str:
    first = image.split("/", 1)[0]
    return first if "/" in image and ("." in first or ":" in first or first == "localhost") else "registry-1.docker.io"


def _layers_done() -> dict:
    return simenv.read_json(simenv.state_dir() / "layers.json", {}) or {}


def _mark_done(digest: str) -> None:
    with simenv.locked("layers"):
        done = _layers_done()
        done[digest] = True
        simenv.write_json(simenv.state_dir() / "layers.json", done)


def failure(image: str) -> str | None:
    """The daemon's error for this image now, from the knobs, or None."""
    host = registry_host(image)
    if simenv.knob("registry_unreachable"):
        return f'Get "https://{host}/v2/": dial tcp: lookup {host} on 127.0.0.53:53: no such host'
    fails = simenv.knob("pull_fail") or {}
    for key in (image, name_of(image)):
        if key in fails:
            return str(fails[key]) or f"manifest for {image} not found: manifest unknown"
    return None


def pull(image: str, say=print) -> None:
    """Pull `image` layer by layer at the knob ``registry_bps`` (bytes/s; 0 = at once).

    Finished layers are kept (a pull cut short and started again skips them, as the daemon does);
    a layer cut short starts over. `say` gets the lines `docker pull` prints without a terminal.
    Knob ``pull_cut_after_layers`` ({name: N}) fails the pull after N new layers, once per value
    (a dropped connection to the registry).
    """
    why = failure(image)
    if why:
        raise PullError(why)
    doc = manifest(image, verbose=True)
    man = (doc[0] if isinstance(doc, list) else doc)["SchemaV2Manifest"]
    repo, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    say(f"{tag}: Pulling from {repo.split('/', 1)[1] if registry_host(image) in repo else repo}")
    done = _layers_done()
    bps = float(simenv.knob("registry_bps", 0) or 0)
    cut = (simenv.knob("pull_cut_after_layers") or {}).get(name_of(image))
    new = 0
    for layer in man["layers"]:
        short = layer["digest"].split(":", 1)[1][:12]
        if done.get(layer["digest"]):
            say(f"{short}: Already exists")
            continue
        say(f"{short}: Pulling fs layer")
    for layer in man["layers"]:
        digest = layer["digest"]
        short = digest.split(":", 1)[1][:12]
        if done.get(digest):
            continue
        if cut is not None and new >= int(cut) and not _cut_used(image, int(cut)):
            raise PullError(f"Get \"https://{registry_host(image)}/v2/{name_of(image)}/blobs/{digest}\": "
                            "read tcp 10.0.2.15:50212->140.82.121.34:443: read: connection reset by peer")
        if bps > 0:
            time.sleep(layer["size"] / bps)
        why = failure(image)
        if why:
            raise PullError(why)
        say(f"{short}: Download complete")
        say(f"{short}: Pull complete")
        _mark_done(digest)
        simenv.bump_counter(f"registry_bytes:{name_of(image)}", int(layer["size"]))  # what crossed the wire
        new += 1
    say(f"Digest: {_digest(image)}")
    say(f"Status: Downloaded newer image for {image}")


def _cut_used(image: str, n: int) -> bool:
    """A cut happens once per (image, N): the retry after it gets through."""
    path = simenv.state_dir() / "pull-cuts.json"
    with simenv.locked("layers"):
        used = simenv.read_json(path, []) or []
        key = f"{name_of(image)}:{n}"
        if key in used:
            return True
        simenv.write_json(path, [*used, key])
        return False
