"""devices.device_usage: holders, mounts, swap and processes, on a fake /sys and /proc tree.

The layouts copy lab1 (Debian 12, lvm2 2.03.16): vda = 254:0 is the root disk (mountinfo and swaps
recorded there, in tests/unit/fixtures/iscsi); a process holding an LV open shows in /proc/PID/fd
as a link to /dev/dm-N, whatever path it opened. Symlinks under a fake /proc carry no device
number, so the tests give ``rdev_of`` the number each link target stands for.
"""

import os
from pathlib import Path

from ansible_collections.openblock.storage.plugins.module_utils import devices, iscsi

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'iscsi'
MOUNTINFO, SWAPS = str(FIXTURES / 'mountinfo_lab1.stdout'), str(FIXTURES / 'swaps_lab1.stdout')
NUMBERS = {'/dev/sdb': '8:16', '/dev/sdb1': '8:17', '/dev/dm-0': '253:0', '/dev/dm-3': '253:3', '/dev/vdc': '254:32'}


def rdev_of(link):
    return NUMBERS.get(os.readlink(link))


def disk(sys_block, name, number, parent=None):
    base = sys_block / parent / name if parent else sys_block / name
    (base / 'holders').mkdir(parents=True)
    (base / 'dev').write_text(number + '\n')
    return base


def process(proc, pid, comm, *targets):
    (proc / str(pid) / 'fd').mkdir(parents=True)
    (proc / str(pid) / 'comm').write_text(comm + '\n')
    for fd, target in enumerate(targets):
        (proc / str(pid) / 'fd' / str(fd)).symlink_to(target)


def usage(tmp_path, name):
    return devices.device_usage(name, str(tmp_path / 'block'), MOUNTINFO, SWAPS, str(tmp_path / 'proc'), rdev_of)


def test_holders_mounts_and_free_devices(tmp_path):
    sys_block = tmp_path / 'block'
    (tmp_path / 'proc').mkdir()
    disk(sys_block, 'vda', (FIXTURES / 'sysfs_vda.stdout').read_text().splitlines()[0])
    assert usage(tmp_path, 'vda') == ['/dev/vda is mounted on /']
    # a disk with a multipath map on its partition, and nothing mounted
    disk(sys_block, 'sdb', '8:16')
    (disk(sys_block, 'sdb1', '8:17', parent='sdb') / 'holders' / 'dm-0').mkdir()
    (disk(sys_block, 'dm-0', '253:0') / 'dm').mkdir()
    (sys_block / 'dm-0' / 'dm' / 'name').write_text('mpatha\n')
    assert usage(tmp_path, 'sdb') == ['/dev/sdb1 is held by dm-0 (mpatha)']
    disk(sys_block, 'sdc', '8:32')
    assert usage(tmp_path, 'sdc') == []
    assert usage(tmp_path, 'sdz') == []  # gone already
    # the name iscsi_session and tgt_target have always imported is the same function
    assert iscsi.device_usage is devices.device_usage


def test_a_process_holding_the_device_open_is_named(tmp_path):
    """tgtd exporting vdc as a raw LUN: no holder, no mount, only an open fd. Before processes were
    looked at, vdc counted as free and lvm_vg with force would have wiped it."""
    sys_block, proc = tmp_path / 'block', tmp_path / 'proc'
    disk(sys_block, 'vdc', '254:32')
    process(proc, 1, 'systemd', '/dev/null', 'socket:[1234]')
    process(proc, 812, 'tgtd', '/dev/null', '/dev/vdc', '/dev/vdc', 'anon_inode:[eventpoll]')
    assert usage(tmp_path, 'vdc') == ['/dev/vdc is open by tgtd (pid 812)']


def test_a_process_behind_a_holder_is_named(tmp_path):
    """qemu opens the LV (dm-3) on the multipath map (dm-0) on sdb1: sdb is held, and qemu is named."""
    sys_block, proc = tmp_path / 'block', tmp_path / 'proc'
    disk(sys_block, 'sdb', '8:16')
    (disk(sys_block, 'sdb1', '8:17', parent='sdb') / 'holders' / 'dm-0').mkdir()
    (disk(sys_block, 'dm-0', '253:0') / 'holders' / 'dm-3').mkdir()
    (disk(sys_block, 'dm-3', '253:3') / 'dm').mkdir()
    (sys_block / 'dm-3' / 'dm' / 'name').write_text('vg0-guest\n')
    process(proc, 4321, 'qemu-system-x86', '/dev/dm-3')
    process(proc, 99, 'dd', '/dev/sdb')
    assert usage(tmp_path, 'sdb') == ['/dev/sdb1 is held by dm-0',
                                      '/dev/sdb is open by dd (pid 99)',
                                      '/dev/dm-3 (vg0-guest), which holds it, is open by qemu-system-x86 (pid 4321)']
    # the LV itself, as lvm_thickvol and lvm_thinvol ask about it
    assert usage(tmp_path, 'dm-3') == ['/dev/dm-3 (vg0-guest) is open by qemu-system-x86 (pid 4321)']


def test_unreadable_proc_counts_as_in_use(tmp_path):
    sys_block = tmp_path / 'block'
    disk(sys_block, 'vdc', '254:32')
    assert usage(tmp_path, 'vdc') == [
        'cannot read %s to find the processes that hold devices open (No such file or directory)' % (tmp_path / 'proc')]
    # one process whose fds cannot be listed makes the answer incomplete: in use
    (tmp_path / 'proc').mkdir()
    (tmp_path / 'proc' / '77').mkdir()
    (tmp_path / 'proc' / '77' / 'fd').write_text('')
    assert usage(tmp_path, 'vdc') == ['cannot read the open files of pid 77 under %s' % (tmp_path / 'proc')]
    # a process that exits during the scan is no reason
    (tmp_path / 'proc' / '77' / 'fd').unlink()
    assert usage(tmp_path, 'vdc') == []


def test_unreadable_mountinfo_counts_as_in_use(tmp_path):
    disk(tmp_path / 'block', 'vdc', '254:32')
    (tmp_path / 'proc').mkdir()
    missing = str(tmp_path / 'no-mountinfo')
    assert devices.device_usage('vdc', str(tmp_path / 'block'), missing, SWAPS, str(tmp_path / 'proc'), rdev_of) == [
        'cannot read %s to find the mounts' % missing]


def test_block_rdev_only_answers_for_block_devices(tmp_path):
    plain = tmp_path / 'file'
    plain.write_text('')
    (tmp_path / 'fd').symlink_to(plain)
    assert devices.block_rdev(str(tmp_path / 'fd')) is None
    assert devices.block_rdev(str(tmp_path / 'missing')) is None


def test_a_path_of_a_map_removed_first_is_free_of_the_map_and_of_multipathd(tmp_path):
    """iscsi_session flushes the map (dm-0) before it logs out of its path sdb: the map's own usage is
    checked apart, and multipathd's path checker lets go of sdb with the map. Anyone else still counts."""
    sys_block, proc = tmp_path / 'block', tmp_path / 'proc'
    (disk(sys_block, 'sdb', '8:16') / 'holders' / 'dm-0').mkdir()
    (disk(sys_block, 'dm-0', '253:0') / 'dm').mkdir()
    (sys_block / 'dm-0' / 'dm' / 'name').write_text('mpatha\n')
    process(proc, 612, 'multipathd', '/dev/sdb')
    process(proc, 700, 'dd', '/dev/dm-0')
    assert usage(tmp_path, 'sdb') == ['/dev/sdb is held by dm-0 (mpatha)', '/dev/sdb is open by multipathd (pid 612)',
                                      '/dev/dm-0 (mpatha), which holds it, is open by dd (pid 700)']
    removed = devices.devices_usage(['sdb'], str(sys_block), MOUNTINFO, SWAPS, str(proc), rdev_of, removed_holders=['dm-0'])
    assert removed == {'sdb': []}
    process(proc, 99, 'dd', '/dev/sdb')
    removed = devices.devices_usage(['sdb'], str(sys_block), MOUNTINFO, SWAPS, str(proc), rdev_of, removed_holders=['dm-0'])
    assert removed == {'sdb': ['/dev/sdb is open by dd (pid 99)']}
