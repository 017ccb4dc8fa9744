"""Logic of the built-in VM lab, used by lab/labctl.

Pure parts (topology parsing, inventory rendering, slot counting, qemu argv) have no side effects
so that tests/lab can check them without booting anything.
"""

import hashlib
import ipaddress
import json
import os
import re
import tomllib
from dataclasses import dataclass, field

LAB_ROOT = os.path.dirname(os.path.abspath(__file__))
TOPOLOGY_DIR = os.path.join(LAB_ROOT, "topologies")

# Machine-wide: several engineers and test runs share this 2-core host. Five: `make test` runs a
# `single` VM of each Debian release beside a 3-VM `cinder` lab (see lab/README.md for the load measured).
MAX_VMS = 5
VM_MEMORY_MIB = 768
VM_CPUS = 1
# Marker in the qemu command line (-name) by which every lab VM of every instance is counted.
VM_NAME_PREFIX = "openblock-lab-"

SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class LabError(Exception):
    """An error whose message tells the user what went wrong and what to do."""


def parse_size(text):
    """'8G', '512M', '1073741824' -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(i?B)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise LabError(f"bad size {text!r}: use a number with an optional K, M, G or T suffix")
    return int(match.group(1)) * SIZE_UNITS[match.group(2).upper()]


# ---------------------------------------------------------------------------------------------
# Topologies


@dataclass
class Disk:
    serial: str
    size: int  # bytes
    shared: bool = False


@dataclass
class Nic:
    network: str  # storage network (VDE switch) name
    interface: str  # name inside the VM (net.ifnames=0: eth1, eth2, ...)
    address: str
    prefix: int
    mac: str


@dataclass
class Node:
    name: str
    groups: list
    nics: list = field(default_factory=list)
    disks: list = field(default_factory=list)
    packages: list = field(default_factory=list)  # installed from the lab repo by `labctl up`


@dataclass
class Topology:
    name: str
    description: str
    networks: dict  # name -> ipaddress.IPv4Network
    shared_disks: dict  # serial -> Disk
    nodes: list
    release: str = None  # the Debian release its VMs run, when the topology names one
    image: str = "bare"  # which root file system of the image its VMs boot: a key of ROOT_IMAGES


# The Debian releases the lab builds images of: one cached image per release.
RELEASES = ("bookworm", "trixie")
DEFAULT_RELEASE = "bookworm"

# The root file systems each image holds, by the name a topology's `image` gives. "bare" is what a
# minimal Debian cloud image has: the roles install the storage packages from the lab repo.
# "storage-stack" has them installed at build, natively, for the module tests and the benchmark,
# which install nothing and would pay minutes of emulated CPU per VM for it.
ROOT_IMAGES = {"bare": "root.img", "storage-stack": "root-stack.img"}


def release_of(named=None, environ=None):
    """The release to run: $LAB_RELEASE, else the one named (by the topology or a command line), else
    the default. Raises LabError on a release the lab does not build."""
    environ = os.environ if environ is None else environ
    release = environ.get("LAB_RELEASE") or named or DEFAULT_RELEASE
    if release not in RELEASES:
        source = "LAB_RELEASE" if environ.get("LAB_RELEASE") else "release"
        raise LabError(f"{source}={release!r}: the lab builds Debian {' and '.join(RELEASES)}; pick one of them")
    return release


def node_releases(topology, release, environ=None):
    """The release of each node: `release` for all, save those $LAB_NODE_RELEASES names
    ("compute1=bookworm,compute2=trixie"), so that one lab can mix releases as a fleet in the middle
    of an upgrade does. Raises LabError, naming the entry, on an unknown node or release."""
    environ = os.environ if environ is None else environ
    releases = {node.name: release for node in topology.nodes}
    for entry in environ.get("LAB_NODE_RELEASES", "").replace(",", " ").split():
        node, _sep, node_release = entry.partition("=")
        if node not in releases:
            raise LabError(f"LAB_NODE_RELEASES={entry!r}: topology {topology.name} has no node {node!r} "
                           f"(nodes: {', '.join(releases)})")
        if node_release not in RELEASES:
            raise LabError(f"LAB_NODE_RELEASES={entry!r}: the lab builds Debian {' and '.join(RELEASES)}; "
                           "write NODE=RELEASE with one of them")
        releases[node] = node_release
    return releases


SERIAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,19}")  # virtio-blk serials are at most 20 bytes
NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")
PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")  # a Debian package name, no version


def package_list(path):
    """The package names of a list file of lab/image: one a line, # starts a comment line."""
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith("#")]


def topology_packages(name, where, value):
    """A topology's `packages` value: a list of Debian package names."""
    names_ok = isinstance(value, list) and all(
        isinstance(package, str) and PACKAGE_RE.fullmatch(package) for package in value)
    if not names_ok:
        raise LabError(f"topology {name}: {where}'packages' must be a list of Debian package names, got {value!r}")
    return value


def mac_address(node_index, nic_index):
    """Locally administered MACs in qemu's 52:54:00 range, unique within one instance."""
    return f"52:54:00:6c:{node_index:02x}:{nic_index:02x}"


def parse_topology(name, text):
    """Parse a topology TOML text into a Topology, checking everything a boot would trip over."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LabError(f"topology {name}: not valid TOML: {exc}") from None

    networks = {}
    for net_name, net in data.get("networks", {}).items():
        if not NAME_RE.fullmatch(net_name):
            raise LabError(f"topology {name}: bad network name {net_name!r}")
        try:
            networks[net_name] = ipaddress.IPv4Network(net["subnet"])
        except (KeyError, ValueError) as exc:
            raise LabError(f"topology {name}: network {net_name} needs a valid 'subnet': {exc}") from None

    shared_disks = {}
    for serial, disk in data.get("shared_disks", {}).items():
        if not SERIAL_RE.fullmatch(serial):
            raise LabError(f"topology {name}: bad disk serial {serial!r} (letters, digits, - _; 20 at most)")
        shared_disks[serial] = Disk(serial, parse_size(disk["size"]), shared=True)

    common_packages = topology_packages(name, "", data.get("packages", []))
    nodes = []
    seen_addresses = set()
    node_tables = data.get("nodes", {})
    if not node_tables:
        raise LabError(f"topology {name}: no [nodes.NAME] table")
    for node_index, (node_name, spec) in enumerate(node_tables.items(), start=1):
        if not NAME_RE.fullmatch(node_name):
            raise LabError(f"topology {name}: bad node name {node_name!r} (lower case, digits, -)")
        groups = spec.get("groups", [])
        if not groups or not all(NAME_RE.fullmatch(g.replace("_", "-")) for g in groups):
            raise LabError(f"topology {name}: node {node_name} needs 'groups', a list of group names")
        node_packages = topology_packages(name, f"node {node_name}: ", spec.get("packages", []))
        node = Node(node_name, list(groups),
                    packages=list(dict.fromkeys(common_packages + node_packages)))  # in order, once each
        # eth0 is the management NIC; storage NICs follow in the order the node lists them.
        for nic_index, (net_name, address) in enumerate(spec.get("networks", {}).items(), start=1):
            if net_name not in networks:
                raise LabError(f"topology {name}: node {node_name} uses undefined network {net_name}")
            subnet = networks[net_name]
            try:
                ip = ipaddress.IPv4Address(address)
            except ValueError:
                raise LabError(f"topology {name}: node {node_name}: bad address {address!r}") from None
            if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
                raise LabError(f"topology {name}: node {node_name}: {ip} is not a host address of {subnet}")
            if ip in seen_addresses:
                raise LabError(f"topology {name}: address {ip} is used twice")
            seen_addresses.add(ip)
            node.nics.append(Nic(net_name, f"eth{nic_index}", str(ip), subnet.prefixlen,
                                 mac_address(node_index, nic_index)))
        serials = set()
        for disk in spec.get("disks", []):
            serial = disk.get("serial", "")
            if not SERIAL_RE.fullmatch(serial):
                raise LabError(f"topology {name}: node {node_name}: bad disk serial {serial!r}")
            node.disks.append(Disk(serial, parse_size(disk["size"])))
            serials.add(serial)
        for serial in spec.get("shared_disks", []):
            if serial not in shared_disks:
                raise LabError(f"topology {name}: node {node_name} uses undefined shared disk {serial}")
            node.disks.append(shared_disks[serial])
            serials.add(serial)
        if len(serials) != len(node.disks):
            raise LabError(f"topology {name}: node {node_name} has two disks with one serial")
        nodes.append(node)

    if len(nodes) > MAX_VMS:
        raise LabError(f"topology {name}: {len(nodes)} nodes, but at most {MAX_VMS} VMs may run on this machine")
    release = data.get("release")
    if release is not None and release not in RELEASES:
        raise LabError(f"topology {name}: release {release!r} is not one the lab builds ({', '.join(RELEASES)})")
    image = data.get("image", "bare")
    if image not in ROOT_IMAGES:
        raise LabError(f"topology {name}: image {image!r} is not one the lab builds ({', '.join(ROOT_IMAGES)})")
    return Topology(name, data.get("description", ""), networks, shared_disks, nodes, release, image)


def load_topology(name):
    """A topology by name from lab/topologies, or from a path to a .toml file (for experiments)."""
    if name.endswith(".toml") and os.path.isfile(name):
        with open(name, encoding="utf-8") as handle:
            return parse_topology(os.path.abspath(name), handle.read())
    path = os.path.join(TOPOLOGY_DIR, f"{name}.toml")
    if not os.path.isfile(path):
        known = sorted(f[:-5] for f in os.listdir(TOPOLOGY_DIR) if f.endswith(".toml"))
        raise LabError(f"no topology {name!r}; known: {', '.join(known)} (files in {TOPOLOGY_DIR})")
    with open(path, encoding="utf-8") as handle:
        return parse_topology(name, handle.read())


# ---------------------------------------------------------------------------------------------
# Inventory


def _yaml_scalar(value):
    """Quote a string for YAML unless it is plainly safe; numbers stay numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    looks_like_other_type = re.fullmatch(r"[0-9.]+|true|false|yes|no|null|~", text, re.IGNORECASE)
    if re.fullmatch(r"[A-Za-z0-9_./-]+", text) and not looks_like_other_type:
        return text
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


def render_inventory(topology, ports, key_file, instance_dir):
    """Ansible YAML inventory: every host under all.hosts with its vars, groups list the names."""
    ssh_args = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    lines = [
        f"# Written by lab/labctl for topology {topology.name}, instance {instance_dir}.",
        "# Regenerate with `lab/labctl inventory --output FILE` after every `labctl up`.",
        "all:",
        "  vars:",
        f"    lab_topology: {_yaml_scalar(topology.name)}",
        "  hosts:",
    ]
    for node in topology.nodes:
        lines += [
            f"    {node.name}:",
            "      ansible_host: 127.0.0.1",
            f"      ansible_port: {int(ports[node.name])}",
            "      ansible_user: root",
            f"      ansible_ssh_private_key_file: {_yaml_scalar(key_file)}",
            f"      ansible_ssh_common_args: {_yaml_scalar(ssh_args)}",
            "      ansible_python_interpreter: /usr/bin/python3",
        ]
        if node.nics:
            lines.append("      storage_networks:")
            for nic in node.nics:
                lines.append(f"        - {{name: {_yaml_scalar(nic.network)}, interface: {nic.interface}, "
                             f"address: {_yaml_scalar(nic.address)}, prefix: {nic.prefix}}}")
        else:
            lines.append("      storage_networks: []")
    groups = {}
    for node in topology.nodes:
        for group in node.groups:
            groups.setdefault(group, []).append(node.name)
    lines.append("  children:")
    for group, members in groups.items():
        lines += [f"    {group}:", "      hosts:"]
        lines += [f"        {member}: {{}}" for member in members]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# VM slots (machine-wide)


def lab_vm_name(argv):
    """The lab VM name in a process's argv, or None if it is not a lab qemu."""
    if not argv or "qemu-system" not in os.path.basename(argv[0]):
        return None
    for flag, value in zip(argv, argv[1:]):
        if flag == "-name" and value.startswith(VM_NAME_PREFIX):
            return value
    return None


def count_lab_vms(argvs):
    """Names of the lab VMs among these process argvs (all instances, all users)."""
    return sorted(name for name in map(lab_vm_name, argvs) if name)


def lab_vm_owners(argvs):
    """'NODE in RUN_DIR' for each lab VM, so that people sharing the machine see who holds slots."""
    owners = []
    for argv in argvs:
        name = lab_vm_name(argv)
        if name and "-pidfile" in argv[:-1]:
            pidfile = argv[argv.index("-pidfile") + 1]  # RUN_DIR/overlays/NODE.pid
            node = os.path.basename(pidfile).removesuffix(".pid")
            owners.append(f"{node} in {os.path.dirname(os.path.dirname(pidfile))}")
        elif name:
            owners.append(name)
    return sorted(owners)


def running_process_argvs():
    argvs = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue  # gone, or not ours to read
        if raw:
            argvs.append([part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")])
    return argvs


def free_slots(running, wanted, limit=MAX_VMS):
    """How many of `wanted` new VMs may start now, given the names of those running."""
    return max(0, limit - len(running)) >= wanted


def tickets_ahead(tickets, mine, alive):
    """Queue tickets ('<time_ns>-<pid>') of live waiters that queued before `mine`.

    First come, first served: without it, one-VM requests could starve a three-VM one forever."""
    ahead = []
    for ticket in tickets:
        stamp, pid = ticket.partition("-")[::2]
        if stamp.isdigit() and pid.isdigit() and ticket < mine and alive(int(pid)):
            ahead.append(ticket)
    return sorted(ahead)


def instance_id(run_dir):
    """Short stable id of an instance, from its run directory, used in VM process names."""
    return hashlib.sha256(os.path.abspath(run_dir).encode()).hexdigest()[:8]


# ---------------------------------------------------------------------------------------------
# qemu command line


def qemu_argv(*, vm_name, accel, kernel, initrd, append, overlay, ssh_port, nics, disks, disk_dir,
              switch_dirs, console_log, pidfile, repo_image):
    """The qemu-system-x86_64 argv of one lab VM (daemonized, serial console to a file)."""
    argv = [
        "qemu-system-x86_64",
        "-name", vm_name,
        "-machine", f"q35,accel={accel}",
        # erms/fsrm off: with them the guest kernel and glibc copy memory with `rep movsb`, which TCG
        # emulates a byte at a time; without them a module run is ~15% faster (dd from /dev/zero 6x).
        "-cpu", "max,erms=off,fsrm=off" if accel == "tcg" else "host",
        "-m", str(VM_MEMORY_MIB), "-smp", str(VM_CPUS),
        # append=on: the console log keeps every boot of the VM, across `labctl reboot`.
        "-display", "none", "-monitor", "none",
        "-chardev", f"file,id=console,path={console_log},append=on", "-serial", "chardev:console",
        "-daemonize", "-pidfile", pidfile,
        "-kernel", kernel, "-initrd", initrd, "-append", append,
        # The overlay is thrown away at `down`: host-side flushes buy nothing.
        "-drive", f"file={overlay},if=none,id=root,format=qcow2,cache=unsafe",
        "-device", "virtio-blk-pci,drive=root",
        # Management NIC: restrict=on keeps the VM off every host/outside address; only the
        # forwarded SSH port on 127.0.0.1 reaches it.
        "-netdev", f"user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
        "-device", "virtio-net-pci,netdev=mgmt",
    ]
    for nic in nics:
        argv += ["-netdev", f"vde,id={nic.interface},sock={switch_dirs[nic.network]}",
                 "-device", f"virtio-net-pci,netdev={nic.interface},mac={nic.mac}"]
    for index, disk in enumerate(disks, start=1):
        path = os.path.join(disk_dir, f"{disk.serial}.raw")
        if disk.shared:
            # Several VMs open this file: no image locking, and tell qemu sharing is intended.
            argv += ["-drive", f"file={path},if=none,id=d{index},format=raw,file.locking=off",
                     "-device", f"virtio-blk-pci,drive=d{index},serial={disk.serial},share-rw=on"]
        else:
            argv += ["-drive", f"file={path},if=none,id=d{index},format=raw",
                     "-device", f"virtio-blk-pci,drive=d{index},serial={disk.serial}"]
    # The image's package repository, shared read-only by every VM; last, so that the topology's
    # disks keep the names vdb, vdc, ... they had before it.
    argv += ["-drive", f"file={repo_image},if=none,id=labrepo,format=raw,readonly=on",
             "-device", "virtio-blk-pci,drive=labrepo,serial=labrepo"]
    return argv


def kernel_append(hostname, nics):
    """Kernel command line; lab.net= is read by the image's lab-net boot unit."""
    # quiet: every console byte costs an emulated UART write under TCG; failures still show.
    parts = ["root=LABEL=labroot", "rw", "rootdelay=5", "console=ttyS0", "net.ifnames=0", "quiet",
             f"systemd.hostname={hostname}"]
    if nics:
        parts.append("lab.net=" + ",".join(f"{nic.mac}@{nic.address}/{nic.prefix}" for nic in nics))
    return " ".join(parts)
