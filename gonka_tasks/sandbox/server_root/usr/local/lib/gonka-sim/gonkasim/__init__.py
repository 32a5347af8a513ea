"""gonka-sim: the simulated docker engine, containers and Gonka programs of a sandbox host.

Runs on the host's system python (stdlib + PyYAML). Entry points live in /usr/local/bin (docker,
nvidia-smi, systemctl, udevadm) and /usr/local/lib/gonka-sim (container-init, bin-chain/inferenced,
bin-common/wget|curl). State: /var/lib/gonka-sim, logs: /var/log/gonka-sim, knobs:
/etc/gonka-sim/knobs.json (all under $GONKA_SIM_ROOT when set).
"""
