"""Sandbox hosts: disposable SSH servers on the test machine, and the lab that deploys onto them."""
