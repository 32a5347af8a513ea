"""gonka-sim: the simulated docker engine, containers and Gonka programs of a sandbox host.

`install.tree()` builds what a host gets (its programs in /usr/local/bin, this package as
/usr/local/lib/gonka-sim/gonkasim); see there. State: /var/lib/gonka-sim, logs:
/var/log/gonka-sim, knobs: /etc/gonka-sim/knobs.json (all under $GONKA_SIM_ROOT when set).
"""
