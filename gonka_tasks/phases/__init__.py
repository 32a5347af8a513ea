"""The deploy's seven phases, one module each, named after its task, in the order `deploy.py` runs them.

  prepare_server.py   1: admin SSH keys, the data disk (formatted only when blank), fstab, Prometheus
  download_model.py   2: the gonka checkout, huggingface_hub, the model download job (with images.py's pull)
  configure.py        3: config.env and node-config.json, rendered locally and uploaded
  start_base.py       4: tmkms + node, the warm key (warm_key.py: created once), the registration
  configure_chain.py  5: persistent peers and pruning in the chain's TOML files
  launch.py           6: every service, internal ports bound to INTERNAL_BIND_ADDRESS
  verify.py           7: PASS/WARN/FAIL checks of the running host

Their shared support: deploy.py (the order, --from/--only, the final report), common.py (snapshots,
waits, compose lines), prereqs.py (the preflight on the server), images.py (the image pull job),
recipe.py (the model recipe from the seed and the GPUs), backup.py (the keys, saved after phase 4).
A phase is a plain function taking the `Run`; it never trusts that an earlier one ran: it checks its
own preconditions on the server.
"""
