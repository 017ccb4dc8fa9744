"""Pure logic of lab/labctl: topology parsing, inventory rendering, VM slot counting, the shared SSH key,
the package lists of the image and its repo. No VMs."""

import importlib.machinery
import importlib.util
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "lab"))
import lablib  # noqa: E402


def test_cinder_topology_matches_the_issue():
    topology = lablib.load_topology("cinder")
    nodes = {node.name: node for node in topology.nodes}
    assert list(nodes) == ["storage1", "compute1", "compute2"]
    assert nodes["storage1"].groups == ["storage_nodes"]
    assert nodes["compute1"].groups == nodes["compute2"].groups == ["compute_nodes"]
    storage1 = nodes["storage1"]
    assert [(n.network, n.interface, n.address, n.prefix) for n in storage1.nics] == [
        ("storage-a", "eth1", "10.50.1.10", 24), ("storage-b", "eth2", "10.50.2.10", 24)]
    assert [(d.serial, d.size, d.shared) for d in storage1.disks] == [
        ("cinder-volumes", 8 << 30, False), ("shared-lun", 2 << 30, False)]
    for name, host in (("compute1", 21), ("compute2", 22)):
        assert [n.address for n in nodes[name].nics] == [f"10.50.1.{host}", f"10.50.2.{host}"]
        assert [(d.serial, d.size, d.shared) for d in nodes[name].disks] == [("san-lun", 1 << 30, True)]
    macs = [nic.mac for node in topology.nodes for nic in node.nics]
    assert len(set(macs)) == len(macs)


def test_single_topology():
    topology = lablib.load_topology("single")
    (lab1,) = topology.nodes
    assert lab1.name == "lab1" and lab1.groups == ["lab"]
    assert [d.serial for d in lab1.disks] == ["spare1", "spare2", "spare3"]


@pytest.mark.parametrize("text, message", [
    ("[nodes.a]\ngroups=['g']\nnetworks={ x = '10.0.0.1' }", "undefined network x"),
    ("[networks.n]\nsubnet='10.9.0.0/24'\n[nodes.a]\ngroups=['g']\nnetworks={ n = '10.8.0.1' }",
     "not a host address"),
    ("[networks.n]\nsubnet='10.9.0.0/24'\n[nodes.a]\ngroups=['g']\nnetworks={ n = '10.9.0.1' }\n"
     "[nodes.b]\ngroups=['g']\nnetworks={ n = '10.9.0.1' }", "used twice"),
    ("[nodes.a]\ngroups=['g']\nshared_disks=['lun']", "undefined shared disk"),
    ("[nodes.a]\ngroups=['g']\ndisks=[{serial='x', size='1Q'}]", "bad size"),
    ("[nodes.a]\ngroups=['g']\ndisks=[{serial='a-serial-longer-than-twenty', size='1G'}]", "bad disk serial"),
    ("[nodes.a]\ngroups=['g']\ndisks=[{serial='x', size='1G'}, {serial='x', size='1G'}]", "one serial"),
    ("[nodes.a]\n", "needs 'groups'"),
    ("", "no [nodes.NAME]"),
    ("".join(f"[nodes.n{i}]\ngroups=['g']\n" for i in range(lablib.MAX_VMS + 1)), f"at most {lablib.MAX_VMS}"),
    ("nodes = [", "not valid TOML"),
])
def test_topology_errors_say_what_is_wrong(text, message):
    with pytest.raises(lablib.LabError, match=message.replace("[", r"\[")):
        lablib.parse_topology("t", text)


def test_unknown_topology_lists_the_known_ones():
    with pytest.raises(lablib.LabError, match="known: .*cinder.*single") as error:
        lablib.load_topology("nope")
    assert "no topology 'nope'" in str(error.value)


def test_inventory_groups_hosts_and_storage_networks():
    topology = lablib.load_topology("cinder")
    text = lablib.render_inventory(topology, {"storage1": 40001, "compute1": 40002, "compute2": 40003},
                                   "/cache/ssh/lab_ed25519", "/run/x")
    assert "    storage1:\n      ansible_host: 127.0.0.1\n      ansible_port: 40001\n" in text
    assert "      ansible_user: root\n" in text
    assert "      ansible_ssh_private_key_file: /cache/ssh/lab_ed25519\n" in text
    assert "      ansible_python_interpreter: /usr/bin/python3\n" in text
    assert "StrictHostKeyChecking=no" in text
    assert ("        - {name: storage-a, interface: eth1, address: \"10.50.1.10\", prefix: 24}\n"
            "        - {name: storage-b, interface: eth2, address: \"10.50.2.10\", prefix: 24}\n") in text
    assert "    storage_nodes:\n      hosts:\n        storage1: {}\n" in text
    assert "    compute_nodes:\n      hosts:\n        compute1: {}\n        compute2: {}\n" in text


def test_inventory_is_valid_yaml_when_pyyaml_is_at_hand():
    yaml = pytest.importorskip("yaml")
    topology = lablib.load_topology("cinder")
    data = yaml.safe_load(lablib.render_inventory(topology, {"storage1": 1, "compute1": 2, "compute2": 3},
                                                  "/k", "/r"))
    host = data["all"]["hosts"]["compute2"]
    assert host["ansible_port"] == 3 and host["ansible_host"] == "127.0.0.1"
    assert host["storage_networks"][1] == {"name": "storage-b", "interface": "eth2",
                                           "address": "10.50.2.22", "prefix": 24}
    assert set(data["all"]["children"]) == {"storage_nodes", "compute_nodes"}


def test_slot_counting_sees_lab_qemus_of_every_instance_only():
    argvs = [
        ["/usr/bin/qemu-system-x86_64", "-name", "openblock-lab-aaaa1111-storage1", "-m", "768"],
        ["qemu-system-x86_64", "-name", "openblock-lab-bbbb2222-lab1"],
        ["qemu-system-x86_64", "-name", "someone-elses-vm"],
        ["vde_switch", "-s", "/x/openblock-lab-"],
        ["bash", "-c", "qemu-system-x86_64 -name openblock-lab-cccc-x"],
    ]
    running = lablib.count_lab_vms(argvs)
    assert running == ["openblock-lab-aaaa1111-storage1", "openblock-lab-bbbb2222-lab1"]
    assert lablib.free_slots(running, lablib.MAX_VMS - 2)
    assert not lablib.free_slots(running, lablib.MAX_VMS - 1)
    assert not lablib.free_slots(running + ["x"] * (lablib.MAX_VMS - 2), 1)


def test_qemu_argv_shares_disks_and_keeps_ssh_on_loopback():
    topology = lablib.load_topology("cinder")
    compute1 = topology.nodes[1]
    argv = lablib.qemu_argv(vm_name="openblock-lab-x-compute1", accel="tcg", kernel="K", initrd="I",
                            append=lablib.kernel_append("compute1", compute1.nics), overlay="O.qcow2",
                            ssh_port=40002, nics=compute1.nics, disks=compute1.disks, disk_dir="/d",
                            switch_dirs={"storage-a": "/s/a", "storage-b": "/s/b"}, console_log="C",
                            pidfile="P", repo_image="/img/repo.img")
    joined = " ".join(argv)
    assert "accel=tcg" in joined and "-m 768 -smp 1" in joined
    assert "hostfwd=tcp:127.0.0.1:40002-:22" in joined and "restrict=on" in joined
    assert "file=/d/san-lun.raw,if=none,id=d1,format=raw,file.locking=off" in joined
    assert "virtio-blk-pci,drive=d1,serial=san-lun,share-rw=on" in joined
    assert "vde,id=eth1,sock=/s/a" in joined and "vde,id=eth2,sock=/s/b" in joined
    # The repo disk comes last, read-only, so that the topology's disks keep their vdX names.
    assert argv[-4:] == ["-drive", "file=/img/repo.img,if=none,id=labrepo,format=raw,readonly=on",
                         "-device", "virtio-blk-pci,drive=labrepo,serial=labrepo"]
    append = argv[argv.index("-append") + 1]
    assert "systemd.hostname=compute1" in append and "root=LABEL=labroot" in append
    assert "lab.net=52:54:00:6c:02:01@10.50.1.21/24,52:54:00:6c:02:02@10.50.2.21/24" in append


def test_sizes():
    assert lablib.parse_size("8G") == 8 << 30
    assert lablib.parse_size("512M") == 512 << 20
    assert lablib.parse_size("1GiB") == 1 << 30
    assert lablib.parse_size(4096) == 4096


def test_topology_from_a_file_path(tmp_path):
    path = tmp_path / "pair.toml"
    path.write_text("[shared_disks.lun]\nsize='64M'\n[nodes.a]\ngroups=['g']\nshared_disks=['lun']\n"
                    "[nodes.b]\ngroups=['g']\nshared_disks=['lun']\n")
    topology = lablib.load_topology(str(path))
    assert [node.name for node in topology.nodes] == ["a", "b"]
    assert topology.nodes[0].disks[0] is topology.nodes[1].disks[0]


def test_slot_queue_is_first_come_first_served_among_live_waiters():
    tickets = ["00000000000000000100-11", "00000000000000000200-22", "00000000000000000300-33", "junk"]
    alive = {11: False, 22: True, 33: True}.get
    assert lablib.tickets_ahead(tickets, "00000000000000000300-33", alive) == ["00000000000000000200-22"]
    assert lablib.tickets_ahead(tickets, "00000000000000000200-22", alive) == []


def test_slot_owners_name_node_and_instance_directory():
    argvs = [["qemu-system-x86_64", "-name", "openblock-lab-aaaa-lab1",
              "-pidfile", "/w/.build/lab-tgt/overlays/lab1.pid"],
             ["qemu-system-x86_64", "-name", "openblock-lab-bbbb-x"], ["sleep", "1"]]
    assert lablib.lab_vm_owners(argvs) == ["lab1 in /w/.build/lab-tgt", "openblock-lab-bbbb-x"]


def test_labs_booting_at_once_on_an_empty_cache_share_one_ssh_key(tmp_path):
    # `make test` boots `single` and `cinder` together; on a fresh machine both find no key.
    labctl = os.path.join(os.path.dirname(lablib.__file__), "labctl")
    code = ("import importlib.machinery, importlib.util; "
            f"loader = importlib.machinery.SourceFileLoader('labctl', {labctl!r}); "
            "module = importlib.util.module_from_spec(importlib.util.spec_from_loader('labctl', loader)); "
            "loader.exec_module(module); print(module.ensure_ssh_key())")
    env = dict(os.environ, LAB_CACHE=str(tmp_path))
    runs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for maker in range(4)]
    keys = [run.communicate()[0].strip() for run in runs]
    assert [run.returncode for run in runs] == [0] * 4
    assert len(set(keys)) == 1 and keys[0].startswith("ssh-ed25519 ")


def test_the_release_comes_from_lab_release_then_the_topology_then_the_default():
    assert lablib.release_of(None, environ={}) == 'bookworm'
    assert lablib.release_of('trixie', environ={}) == 'trixie'
    assert lablib.release_of('bookworm', environ={'LAB_RELEASE': 'trixie'}) == 'trixie'
    with pytest.raises(lablib.LabError, match=r"LAB_RELEASE='sid': the lab builds Debian bookworm and trixie"):
        lablib.release_of(None, environ={'LAB_RELEASE': 'sid'})


def test_a_topology_may_name_its_release():
    text = '[nodes.a]\ngroups = ["lab"]\n'
    assert lablib.parse_topology('t', text).release is None
    assert lablib.parse_topology('t', 'release = "trixie"\n' + text).release == 'trixie'
    with pytest.raises(lablib.LabError, match=r"topology t: release 'buster' is not one the lab builds"):
        lablib.parse_topology('t', 'release = "buster"\n' + text)


def test_lab_node_releases_mixes_releases_in_one_lab():
    topology = lablib.load_topology("cinder")
    assert lablib.node_releases(topology, 'trixie', environ={}) == {
        'storage1': 'trixie', 'compute1': 'trixie', 'compute2': 'trixie'}
    assert lablib.node_releases(topology, 'trixie', environ={'LAB_NODE_RELEASES': 'compute1=bookworm'}) == {
        'storage1': 'trixie', 'compute1': 'bookworm', 'compute2': 'trixie'}
    both = {'LAB_NODE_RELEASES': 'compute1=bookworm, storage1=bookworm'}
    assert lablib.node_releases(topology, 'trixie', environ=both)['storage1'] == 'bookworm'
    with pytest.raises(lablib.LabError, match=r"LAB_NODE_RELEASES='compute3=bookworm': topology cinder has no "
                                              r"node 'compute3' \(nodes: storage1, compute1, compute2\)"):
        lablib.node_releases(topology, 'trixie', environ={'LAB_NODE_RELEASES': 'compute3=bookworm'})
    with pytest.raises(lablib.LabError, match=r"LAB_NODE_RELEASES='compute1': the lab builds Debian bookworm "
                                              r"and trixie; write NODE=RELEASE"):
        lablib.node_releases(topology, 'trixie', environ={'LAB_NODE_RELEASES': 'compute1'})


STORAGE_PACKAGES = ["lvm2", "thin-provisioning-tools", "tgt", "open-iscsi", "multipath-tools", "sanlock",
                    "lvm2-lockd"]


def image_list(name):
    return lablib.package_list(os.path.join(os.path.dirname(lablib.__file__), "image", name))


def test_the_image_list_is_bare_and_the_repo_serves_the_storage_stack():
    assert not set(STORAGE_PACKAGES) & set(image_list("packages.txt"))
    assert image_list("repo-packages.txt") == STORAGE_PACKAGES


def test_no_topology_installs_packages_while_the_image_build_does():
    # labctl still installs the storage stack into the image (customize_rootfs), until bare hosts are proven
    for name in ("single", "cinder", "pair", "bench"):
        assert all(node.packages == [] for node in lablib.load_topology(name).nodes), name


def test_packages_of_the_topology_come_first_then_the_nodes_own_once_each():
    text = ('packages = ["lvm2", "tgt"]\n[nodes.a]\ngroups = ["g"]\npackages = ["tgt", "open-iscsi"]\n'
            '[nodes.b]\ngroups = ["g"]\n[nodes.c]\ngroups = ["g"]\npackages = ["sanlock"]\n')
    nodes = {node.name: node.packages for node in lablib.parse_topology("t", text).nodes}
    assert nodes == {"a": ["lvm2", "tgt", "open-iscsi"], "b": ["lvm2", "tgt"], "c": ["lvm2", "tgt", "sanlock"]}
    assert lablib.parse_topology("t", '[nodes.a]\ngroups = ["g"]\n').nodes[0].packages == []


@pytest.mark.parametrize("text, message", [
    ('packages = "lvm2"\n[nodes.a]\ngroups = ["g"]\n', "topology t: 'packages' must be a list"),
    ('[nodes.a]\ngroups = ["g"]\npackages = ["lvm2=2.03"]\n', "topology t: node a: 'packages' must be a list"),
    ('[nodes.a]\ngroups = ["g"]\npackages = ["lvm2; reboot"]\n', "Debian package names"),
])
def test_bad_packages_say_what_is_wrong(text, message):
    with pytest.raises(lablib.LabError, match=message):
        lablib.parse_topology("t", text)


def test_every_package_a_role_installs_is_in_the_lab_repo():
    # Lab VMs reach no mirror: a role installing a package the repo lacks fails on the lab.
    yaml = pytest.importorskip("yaml")
    roles = os.path.join(os.path.dirname(lablib.__file__), "..", "roles")
    wanted = set()

    def collect(node):
        if isinstance(node, dict):
            units = node.get("openblock.storage.system_units")
            if isinstance(units, dict):
                packages = units.get("packages", [])
                # a Jinja expression: the package names it quotes
                wanted.update(re.findall(r"'([a-z0-9][a-z0-9+.-]+)'", packages) if isinstance(packages, str)
                              else packages)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    for directory, _subdirs, files in os.walk(roles):
        for name in files:
            if directory.endswith("tasks") and name.endswith(".yml"):
                with open(os.path.join(directory, name)) as handle:
                    collect(yaml.safe_load(handle))
    assert wanted, "no role installs a package: has system_units been renamed?"
    assert wanted <= set(image_list("repo-packages.txt")), "add them to lab/image/repo-packages.txt"


def load_labctl():
    path = os.path.join(os.path.dirname(lablib.__file__), "labctl")
    loader = importlib.machinery.SourceFileLoader("labctl", path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("labctl", loader))
    loader.exec_module(module)
    return module


def test_a_kernel_panic_is_found_in_the_console_of_this_boot_only(tmp_path):
    labctl = load_labctl()
    console = tmp_path / "vm.console.log"
    console.write_bytes(b"[    1.250436] Kernel panic - not syncing: Failed to create slab 'sighand_cache'\n")
    vm = {"console": str(console)}
    assert labctl.panicked_since(vm, 0)
    offset = labctl.console_size(vm)  # the boot after it starts here
    with open(console, "ab") as handle:
        handle.write(b"[    0.000000] Linux version 6.12\nWelcome to Debian GNU/Linux 13 (trixie)!\n")
    assert not labctl.panicked_since(vm, offset)
    assert not labctl.panicked_since({"console": str(tmp_path / "missing")}, 0)
    assert labctl.console_size({"console": str(tmp_path / "missing")}) == 0
