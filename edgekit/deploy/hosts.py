"""Deploy targets: `user@host:port`, comma lists, `@file` host lists and Ansible inventories (INI, YAML)."""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput


@dataclass(frozen=True)
class Host:
    host: str                      # address or ssh-config alias
    user: str | None = None
    port: int | None = None
    alias: str | None = None       # inventory name, shown in tables
    key: str | None = None         # ansible_ssh_private_key_file
    python: str | None = None      # ansible_python_interpreter
    root: str | None = None        # edgekit_remote_root: where bundles live on this board

    @property
    def label(self) -> str:
        return self.alias or self.destination + (f":{self.port}" if self.port else "")

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


_SAFE_HOST = re.compile(r"^[A-Za-z0-9._:%\-\[\]]+$")
_SAFE_USER = re.compile(r"^[A-Za-z0-9._\-]+$")


def parse_host(text: str, alias: str | None = None, **extra) -> Host:
    """`[user@]host[:port]`, `[user@][v6addr]:port`, or `ssh://[user@]host[:port]`."""
    value = text.strip()
    if value.startswith("ssh://"):
        value = value[len("ssh://"):].rstrip("/")
    user = None
    if "@" in value:
        user, value = value.rsplit("@", 1)
    port = None
    if value.startswith("["):
        address, _, rest = value[1:].partition("]")
        value = address
        if rest.startswith(":"):
            port = rest[1:]
    elif value.count(":") == 1:
        value, port = value.split(":")
    if not value or not _SAFE_HOST.match(value) or value.startswith("-") or (user is not None and not _SAFE_USER.match(user)):
        raise BadInput(f"'{text}' is not a host", "use [user@]host[:port], e.g. mendel@coral.local or pi@10.0.0.7:2222")
    if port is not None:
        if not str(port).isdigit() or not 0 < int(port) < 65536:
            raise BadInput(f"'{text}' has an invalid port '{port}'", "ports are 1-65535, e.g. mendel@coral.local:2222")
        port = int(port)
    return Host(host=value, user=user, port=port, alias=alias, **extra)


def parse_targets(values: list[str] | tuple[str, ...], base: Path | None = None) -> list[Host]:
    """Every `--host` value: comma-separated hosts, or `@file` (host list or Ansible inventory)."""
    hosts: list[Host] = []
    for value in values:
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            if item.startswith("@"):
                hosts.extend(read_inventory(Path(item[1:])))
            else:
                hosts.append(parse_host(item))
    if not hosts:
        raise BadInput("no hosts given", "pass --host user@host, several comma-separated, or --hosts @inventory")
    seen, unique = set(), []
    for host in hosts:  # the same board twice would race with itself
        if (host.host, host.user, host.port) not in seen:
            seen.add((host.host, host.user, host.port))
            unique.append(host)
    return unique


def read_inventory(path: Path) -> list[Host]:
    if not path.is_file():
        raise BadInput(f"host list {path} does not exist", "pass @FILE with one host per line, or an Ansible inventory")
    text = path.read_text()
    if path.suffix in (".yml", ".yaml") or re.match(r"^\s*(---|all\s*:)", text):
        hosts = _yaml_inventory(text, path)
    else:
        hosts = _ini_inventory(text, path)
    if not hosts:
        raise BadInput(f"{path} lists no hosts", "one host per line ([user@]host[:port]); # starts a comment")
    return hosts


def _host_from_vars(name: str, variables: dict) -> Host:
    address = str(variables.get("ansible_host") or variables.get("ansible_ssh_host") or name)
    host = parse_host(address)
    user = variables.get("ansible_user") or variables.get("ansible_ssh_user") or host.user
    port = variables.get("ansible_port") or variables.get("ansible_ssh_port") or host.port
    alias = name if name != address else None
    return parse_host(f"{user + '@' if user else ''}{_bracket(host.host)}{':' + str(port) if port else ''}", alias=alias,
                      key=variables.get("ansible_ssh_private_key_file"), python=variables.get("ansible_python_interpreter"),
                      root=variables.get("edgekit_remote_root"))


def _bracket(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _ini_inventory(text: str, path: Path) -> list[Host]:
    """Ansible INI: [group], [group:vars], [group:children]; a plain host list is valid INI too."""
    group_hosts: dict[str, list[tuple[str, dict]]] = {}
    group_vars: dict[str, dict] = {}
    children: dict[str, list[str]] = {}
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section, _, kind = line[1:-1].partition(":")
            kind = kind or "hosts"
            continue
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise BadInput(f"{path}:{number}: cannot parse '{line}' ({exc})", "fix the quoting on that line") from None
        if kind == "vars":
            key, _, value = line.partition("=")
            value = value.strip()
            group_vars.setdefault(section, {})[key.strip()] = shlex.split(value)[0] if value else ""
        elif kind == "children":
            children.setdefault(section, []).append(tokens[0])
        elif tokens:
            variables = dict(t.split("=", 1) for t in tokens[1:] if "=" in t)
            group_hosts.setdefault(section, []).append((tokens[0], variables))
    parents: dict[str, list[str]] = {}
    for parent, kids in children.items():
        for kid in kids:
            parents.setdefault(kid, []).append(parent)

    def inherited(group: str, seen=()) -> dict:
        merged: dict = {}
        for parent in parents.get(group, []):
            if parent not in seen:
                merged.update(inherited(parent, seen + (group,)))
        merged.update(group_vars.get("all", {}) if group != "all" else {})
        merged.update(group_vars.get(group, {}))
        return merged

    hosts = []
    for group, entries in group_hosts.items():
        for name, variables in entries:
            hosts.append(_host_from_vars(name, {**inherited(group), **variables}))
    return hosts


def _yaml_inventory(text: str, path: Path) -> list[Host]:
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"{path} is not valid YAML ({str(exc).splitlines()[0]})", "fix the inventory file") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path} is not an Ansible YAML inventory", "the top level must be a mapping like 'all: {hosts: ...}'")
    found: dict[str, dict] = {}

    def walk(group: dict, inherited: dict) -> None:
        if not isinstance(group, dict):
            return
        variables = {**inherited, **(group.get("vars") or {})}
        for name, host_vars in (group.get("hosts") or {}).items():
            found[str(name)] = {**found.get(str(name), {}), **variables, **(host_vars or {})}
        for child in (group.get("children") or {}).values():
            walk(child or {}, variables)

    for group in data.values():
        walk(group or {}, {})
    return [_host_from_vars(name, variables) for name, variables in found.items()]
