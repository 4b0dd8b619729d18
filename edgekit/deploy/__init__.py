"""Deploy models to boards over SSH: verified, atomic, rollback-able bundles, one board or a fleet.

bundle.py builds the bundle, hosts.py parses targets and inventories, ssh.py drives the system
OpenSSH client, remote.py runs the operations, device/edgekit_runner.py is what runs on the board.
"""
