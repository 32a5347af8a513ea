"""Installing the prerequisites a preflight found missing (`--install-prereqs`): Docker Engine
with the Compose v2 plugin from Docker's apt repository, and the NVIDIA Container Toolkit from
NVIDIA's, registered as Docker's `nvidia` runtime. Pure: the shell text of one install.

Steps as the vendors' guides give them (docs.docker.com "Install Docker Engine on Ubuntu: using
the apt repository"; NVIDIA Container Toolkit install guide, "With apt"). Every apt-get call
waits for the package locks (`aptget`). The NVIDIA driver is not installed here: it needs the
right version for the GPUs and a reboot, which an operator chooses.
"""

from __future__ import annotations

from gonka_tasks.core import aptget

DOCKER_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin")
NVIDIA_KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
NVIDIA_REPO = "https://nvidia.github.io/libnvidia-container"

# what `--install-prereqs` can fix: preflight check name -> what it installs
INSTALLABLE = {"Docker Engine": "docker", "Compose v2 plugin": "compose", "NVIDIA container runtime": "toolkit"}


def install_script(what: set[str]) -> str:
    """Shell text installing `what` ({"docker", "compose", "toolkit"}); exits non-zero on the first failure."""
    packages: list[str] = []
    lines = [aptget.apt_function(),
             ". /etc/os-release",
             'case "$ID" in ubuntu|debian) ;; *) echo "no installer for $ID: install Docker and the NVIDIA container '
             'toolkit by hand (see their install guides)" >&2; exit 1 ;; esac',
             'codename=${UBUNTU_CODENAME:-$VERSION_CODENAME}',
             "gd_apt update -qq && gd_apt install -y -qq ca-certificates curl gnupg || exit 1"]
    if what & {"docker", "compose"}:
        lines += ["install -m 0755 -d /etc/apt/keyrings || exit 1",
                  'curl -fsSL "https://download.docker.com/linux/$ID/gpg" -o /etc/apt/keyrings/docker.asc.tmp && '
                  "chmod a+r /etc/apt/keyrings/docker.asc.tmp && mv -f /etc/apt/keyrings/docker.asc.tmp "
                  "/etc/apt/keyrings/docker.asc || exit 1",
                  'echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] '
                  'https://download.docker.com/linux/$ID $codename stable" > /etc/apt/sources.list.d/docker.list '
                  "|| exit 1"]
        packages += list(DOCKER_PACKAGES) if "docker" in what else ["docker-compose-plugin"]
    if "toolkit" in what:
        lines += [f"curl -fsSL {NVIDIA_REPO}/gpgkey | gpg --batch --yes --dearmor -o {NVIDIA_KEYRING} || exit 1",
                  f"curl -fsSL {NVIDIA_REPO}/stable/deb/nvidia-container-toolkit.list | "
                  f"sed 's#deb https://#deb [signed-by={NVIDIA_KEYRING}] https://#g' > "
                  "/etc/apt/sources.list.d/nvidia-container-toolkit.list || exit 1"]
        packages.append("nvidia-container-toolkit")
    lines.append(f"gd_apt update -qq && gd_apt install -y -qq {' '.join(packages)} || exit 1")
    lines.append("systemctl enable --now docker >/dev/null 2>&1 || systemctl start docker || exit 1")
    if "toolkit" in what:
        # dockerd reads daemon.json when it starts: the runtime counts only after the restart
        lines.append("nvidia-ctk runtime configure --runtime=docker && systemctl restart docker || exit 1")
    return "\n".join(lines) + "\n"
