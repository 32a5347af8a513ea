"""The simulated world: what gonka-deploy is tested against on one machine, never shipped to a server.

- `hosts`: sandbox hosts (a network namespace, sshd as pid 1 over an overlay root, a loop disk) and
  the lab that writes node configs and runs `fab` as an operator would;
- `network`: the services a host reaches on the runner (the seed API, a Hugging Face hub, a
  package index) and the local git repositories standing in for upstream's;
- `server`: the server software a sandbox host runs (docker + compose, containers, `inferenced`,
  nvidia-smi), built into each host by `server.install`;
- `demo`: `fab demo`, a deploy onto a local sandbox host.

This package never imports the deployer (`gonka_tasks`): where both need the same thing they use
the same library, so a mistake on one side cannot pass on both.
"""
