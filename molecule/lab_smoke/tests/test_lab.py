"""lab_smoke verifier: the cinder topology has what every scenario stands on.

Hosts and their storage addresses come from the inventory labctl wrote (host var storage_networks).
"""

import uuid

import pytest
import testinfra

testinfra_hosts = ["ansible://all"]

MODULES = ["dm_thin_pool", "iscsi_tcp", "dm_multipath", "softdog"]
SHARED_DISK = "/dev/disk/by-id/virtio-san-lun"


@pytest.fixture(scope="module")
def lab(request):
    """Open another lab host by name, through the same inventory testinfra was given."""
    inventory = request.config.option.ansible_inventory

    def get(name):
        return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}")

    return get


def test_storage_kernel_modules_load(host):
    for module in MODULES:
        host.run_test(f"modprobe {module}")
    loaded = {line.split()[0] for line in host.check_output("lsmod").splitlines()[1:]}
    assert set(MODULES) <= loaded


def test_storage_networks_are_configured(host):
    networks = host.ansible.get_variables()["storage_networks"]
    assert networks, "every cinder node has storage NICs"
    for net in networks:
        addresses = host.check_output(f"ip -4 -o addr show dev {net['interface']}")
        assert f"{net['address']}/{net['prefix']}" in addresses


@pytest.mark.parametrize("compute", ["compute1", "compute2"])
def test_compute_reaches_storage1_on_both_networks(lab, compute):
    storage_networks = lab("storage1").ansible.get_variables()["storage_networks"]
    assert {net["name"] for net in storage_networks} == {"storage-a", "storage-b"}
    computer = lab(compute)
    own = {net["name"]: net["interface"] for net in computer.ansible.get_variables()["storage_networks"]}
    for net in storage_networks:
        # -I: leave through that network's own NIC, so each path is proven on its own.
        computer.run_test(f"ping -c 2 -W 3 -I {own[net['name']]} {net['address']}")


def test_shared_disk_is_one_disk_on_both_computes(lab):
    compute1, compute2 = lab("compute1"), lab("compute2")
    serials = [h.check_output(f"lsblk -dno SERIAL {SHARED_DISK}").strip() for h in (compute1, compute2)]
    assert serials == ["san-lun", "san-lun"]
    # The last sector: LVM (4 MiB extents after a 1 MiB header) never uses it, and it is put back
    # afterwards, so a shared VG that other scenarios keep on this disk is not disturbed.
    sector = int(compute1.check_output(f"blockdev --getsz {SHARED_DISK}")) - 1
    io = "bs=512 count=1 status=none"
    compute1.run_test(f"dd if={SHARED_DISK} of=/root/san-lun-last-sector {io} skip={sector} iflag=direct")
    try:
        # Direct I/O both ways so that neither VM's page cache answers for the other.
        for writer, reader in ((compute1, compute2), (compute2, compute1)):
            pattern = uuid.uuid4().hex
            writer.run_test(f"printf '%-512s' {pattern} | dd of={SHARED_DISK} {io} seek={sector} "
                            "oflag=direct conv=notrunc")
            read = reader.check_output(f"dd if={SHARED_DISK} {io} skip={sector} iflag=direct")
            assert read.strip() == pattern
    finally:
        compute1.run_test(f"dd if=/root/san-lun-last-sector of={SHARED_DISK} {io} seek={sector} "
                          "oflag=direct conv=notrunc && rm /root/san-lun-last-sector")
