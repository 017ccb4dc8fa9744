"""Verifier of the `lifecycle` scenario: day-2 changes of the lab's volumes, each one site.yml run.

Each step edits the inventory (storage_node_volumes, storage_node_chap, given as extra vars over
inventories/lab, so the repository's files stay as they are), runs site.yml once and checks the
result on every host, then runs site.yml again, which must change nothing. The first change is
planned first: site.yml in check and diff mode on the converged lab changes nothing and its report
names exactly the task changes of the run that follows. The tests run in file order and build on
one another, from the lab as the `default` scenario converged it (`make lifecycle`).
"""

import copy
import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SYSTEM = REPO / 'tests' / 'system'
sys.path.insert(0, str(SYSTEM))
# The system tests' harness (tests/system/conftest.py), loaded under a name of its own: Cluster runs
# playbooks of the repository against the lab's inventory, state() reads what the site manages.
_spec = importlib.util.spec_from_file_location('system_harness', SYSTEM / 'conftest.py')
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)
from multipath_maps import maps_on_two_running_paths  # noqa: E402  pylint: disable=wrong-import-position

GROUP_VARS = yaml.safe_load((REPO / 'inventories/lab/group_vars/all.yml').read_text())
VOLUMES = GROUP_VARS['storage_node_volumes']
CHAP = GROUP_VARS['storage_node_chap']
PREFIX = 'iqn.2010-10.org.openstack:volume-'
PORTAL_B = '10.50.2.10:3260'  # storage1's second portal (the lab topology's storage-b address)
PATTERN_MIB = 16
WRITER_BLOCKS = 64  # of 256 KiB, round the start of shared-disk (see WRITER)
GROWN = '384M'
REPORT = {'ANSIBLE_CALLBACKS_ENABLED': 'openblock.storage.plan_report'}


@pytest.fixture(scope='module')
def cluster():
    return harness.Cluster(Path(os.environ.get('LAB_DIR', REPO / '.build' / 'lab-cinder')).resolve())


def volumes(**changes):
    """The lab's volumes with ``changes``: name -> the fields that differ (None drops the field)."""
    result = copy.deepcopy(VOLUMES)
    for volume in result:
        for key, value in changes.get(volume['name'], {}).items():
            if value is None:
                volume.pop(key, None)
            else:
                volume[key] = value
    return result


# Step 1: compute1-disk moves to compute2, compute2-disk is deleted, compute2 leaves shared-disk.
MOVED = volumes(**{'compute1-disk': {'attach_to': ['compute2']},
                   'compute2-disk': {'state': 'absent', 'size': None, 'attach_to': None},
                   'shared-disk': {'attach_to': ['compute1']}})
# Step 2: compute1-disk back on compute1, shared-disk grown and on both computes again, a new secret.
GROWN_VOLUMES = volumes(**{'compute2-disk': {'state': 'absent', 'size': None, 'attach_to': None},
                           'shared-disk': {'size': GROWN}})
NEW_CHAP = dict(CHAP, password='lab-only-rotated-Vb81mQe4TzLw0')


def site(cluster, tmp_path, name, extra, *args, check=True):
    """site.yml with ``extra`` as extra vars and the plan report on; (rc, output, seconds, recap)."""
    path = tmp_path / ('%s.json' % name)
    path.write_text(json.dumps(extra))
    rc, output, took = cluster.playbook('playbooks/site.yml', '-e', '@%s' % path, *args, check=check, env=REPORT)
    return rc, output, took, harness.recap(output)


def changed(counts):
    return dict((host, fields['changed']) for host, fields in sorted(counts.items()))


def assert_no_change(cluster, tmp_path, name, extra):
    took, counts = site(cluster, tmp_path, name, extra)[2:]
    assert all(c == 0 for c in changed(counts).values()) and sorted(counts) == sorted(harness.NODES), counts
    print('%s: the run after it changed nothing (%.0f s)' % (name, took))


def report_tasks(output):
    """(host, task) of every change the plan report lists."""
    text = output[output.index('PLAN: what this run'):]
    tasks, host = set(), None
    for line in text.splitlines():
        match = re.match(r'^(\S+): \d+ change\(s\)$', line)
        if match:
            host = match.group(1)
        elif host and re.match(r'^  \S', line):
            tasks.add((host, line.strip()))
        elif line.startswith('no change:') or line.startswith('PLAY RECAP'):
            host = None
    return tasks


def iqn_lines(cluster, node, volume, command='iscsiadm -m session 2>/dev/null; iscsiadm -m node 2>/dev/null'):
    return [line for line in cluster.sh(node, command, check=False)[1].splitlines() if line.endswith(PREFIX + volume)]


def has_map(cluster, node, volume):
    return cluster.sh(node, 'test -b /dev/mapper/%s' % volume, check=False)[0] == 0


def acl(cluster, volume):
    """The initiator names in the ACL of a volume's target on storage1 (None: no such target)."""
    show = cluster.out('storage1', 'tgtadm --lld iscsi --mode target --op show')
    blocks = re.split(r'^(?=Target \d+: )', show, flags=re.M)
    for block in blocks:
        if block.split('\n', 1)[0].endswith(':volume-' + volume):
            return sorted(re.findall(r'^\s+(iqn\.\S+)$', block.split('ACL information:')[1], re.M))
    return None


def initiator(cluster, node):
    return cluster.out(node, "sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi").strip()


def sha(cluster, node, device, mib):
    return cluster.out(node, 'dd if=%s bs=1M count=%d iflag=direct status=none | sha256sum' % (device, mib)).split()[0]


def test_detaching_a_mounted_volume_is_refused_with_nothing_changed_anywhere(cluster, tmp_path):
    """compute1-disk mounted on compute1, and the inventory of step 1 moves it away: the detach play
    refuses on compute1, naming the mount, and the run stops before any host changes."""
    cluster.sh('compute1', 'mkfs.ext4 -q -F /dev/mapper/compute1-disk && mkdir -p /mnt/lifecycle '
                           '&& mount /dev/mapper/compute1-disk /mnt/lifecycle')
    try:
        before = cluster.state()
        rc, output, took, counts = site(cluster, tmp_path, 'refused', {'storage_node_volumes': MOVED}, check=False)
        assert rc != 0
        assert 'refusing to detach multipath map compute1-disk' in output and '/mnt/lifecycle' in output, output[-3000:]
        harness.assert_same_state(before, cluster.state())
        assert all(c == 0 for c in changed(counts).values()), counts
        print('detach of a mounted volume: refused in %.0f s, nothing changed on %s' % (took, ', '.join(sorted(counts))))
    finally:
        cluster.sh('compute1', 'umount /mnt/lifecycle')


def test_move_delete_and_retire_in_one_run_as_the_plan_said(cluster, tmp_path):
    cluster.sh('compute1', 'head -c %dM /dev/urandom > /root/lifecycle-pattern && dd if=/root/lifecycle-pattern '
                           'of=/dev/mapper/compute1-disk bs=1M oflag=direct status=none' % PATTERN_MIB)
    sent = cluster.out('compute1', 'sha256sum < /root/lifecycle-pattern').split()[0]
    extra = {'storage_node_volumes': MOVED}
    # The plan: check mode changes nothing on the converged lab, and names exactly what the run changes.
    before = cluster.state()
    planned, took_plan = site(cluster, tmp_path, 'plan', extra, '--check', '--diff')[1:3]
    harness.assert_same_state(before, cluster.state())
    print(planned[planned.index('PLAN: what this run'):].split('\nPLAY RECAP')[0])
    rc, output, took, counts = site(cluster, tmp_path, 'moved', extra)
    assert report_tasks(output) == report_tasks(planned), (sorted(report_tasks(planned)), sorted(report_tasks(output)))
    print('plan (--check --diff): %.0f s, nothing changed; move + delete + retire: %.0f s, changed %s; the plan '
          'named the same %d task changes' % (took_plan, took, changed(counts), len(report_tasks(output))))
    # moved: gone from compute1 (map, sessions, records), on compute2 with the data and both paths
    assert not has_map(cluster, 'compute1', 'compute1-disk') and iqn_lines(cluster, 'compute1', 'compute1-disk') == []
    assert sha(cluster, 'compute2', '/dev/mapper/compute1-disk', PATTERN_MIB) == sent
    assert 'compute1-disk' in maps_on_two_running_paths(cluster.out('compute2', 'multipath -ll'))
    assert acl(cluster, 'compute1-disk') == [initiator(cluster, 'compute2')]
    # deleted: target, LV, sessions, records and map gone everywhere
    assert acl(cluster, 'compute2-disk') is None
    assert cluster.sh('storage1', 'lvs cinder-volumes/volume-compute2-disk', check=False)[0] != 0
    for node in harness.COMPUTES:
        assert not has_map(cluster, node, 'compute2-disk') and iqn_lines(cluster, node, 'compute2-disk') == []
    # retired: compute2 left shared-disk, compute1 keeps it
    assert acl(cluster, 'shared-disk') == [initiator(cluster, 'compute1')]
    assert not has_map(cluster, 'compute2', 'shared-disk') and iqn_lines(cluster, 'compute2', 'shared-disk') == []
    assert 'shared-disk' in maps_on_two_running_paths(cluster.out('compute1', 'multipath -ll'))
    assert_no_change(cluster, tmp_path, 'move + delete + retire', extra)


# The writer runs on compute1 as one Python process (a dd per block would fork for every write, which
# on a 1-vCPU TCG VM slowed each module run of the play threefold): it writes the pattern round the
# first WRITER_BLOCKS blocks of shared-disk, each write direct (from an aligned buffer), one every half
# second, until told to stop (at most 1200 writes); an I/O error ends it with exit 1.
WRITER = r'''
import mmap, os, time
size = 256 * 1024
pattern = open('/root/lifecycle-writer', 'rb').read()
buffer = mmap.mmap(-1, size)
fd = os.open('/dev/mapper/shared-disk', os.O_WRONLY | os.O_DIRECT)
for i in range(1200):
    if os.path.exists('/root/lifecycle-stop'):
        break
    block = i % (len(pattern) // size)
    buffer.seek(0)
    buffer.write(pattern[block * size:(block + 1) * size])
    os.pwrite(fd, buffer, block * size)
    with open('/root/lifecycle-writer.i', 'w') as progress:
        progress.write(str(i))
    time.sleep(0.5)
'''


def start_writer(cluster):
    cluster.sh('compute1', 'head -c %dK /dev/urandom > /root/lifecycle-writer && rm -f /root/lifecycle-writer.rc '
                           '/root/lifecycle-stop' % (WRITER_BLOCKS * 256))
    cluster.sh('compute1', "cat > /root/lifecycle-writer.py <<'EOF'%sEOF\n( python3 /root/lifecycle-writer.py && echo 0 "
                           "> /root/lifecycle-writer.rc || echo 1 > /root/lifecycle-writer.rc ) < /dev/null "
                           "> /root/lifecycle-writer.log 2>&1 &" % WRITER)
    time.sleep(2)
    assert cluster.sh('compute1', 'test -e /root/lifecycle-writer.rc', check=False)[0] != 0, \
        'the writer ended early: %s' % cluster.out('compute1', 'cat /root/lifecycle-writer.log')


def stop_writer(cluster):
    """Stop the writer and check that it never failed and that both ends hold the pattern (the run
    outlasts a round of WRITER_BLOCKS writes, so every block holds it)."""
    assert cluster.sh('compute1', 'test -e /root/lifecycle-writer.rc', check=False)[0] != 0, \
        'the writer ended during the run: %s' % cluster.out('compute1', 'cat /root/lifecycle-writer.log')
    writes = int(cluster.out('compute1', 'cat /root/lifecycle-writer.i')) + 1
    assert writes >= WRITER_BLOCKS, 'the run ended after %d writes, before a whole round' % writes
    cluster.sh('compute1', 'touch /root/lifecycle-stop')
    cluster.wait_for('the writer on shared-disk', lambda: cluster.sh(
        'compute1', 'test -e /root/lifecycle-writer.rc', check=False)[0] == 0, 120)
    assert cluster.out('compute1', 'cat /root/lifecycle-writer.rc').strip() == '0', \
        cluster.out('compute1', 'cat /root/lifecycle-writer.log')
    sent = cluster.out('compute1', 'sha256sum < /root/lifecycle-writer').split()[0]
    read = 'dd if=%s bs=256K count=%d iflag=direct status=none | sha256sum'
    assert cluster.out('compute1', read % ('/dev/mapper/shared-disk', WRITER_BLOCKS)).split()[0] == sent
    assert cluster.out('storage1', read % ('/dev/cinder-volumes/volume-shared-disk', WRITER_BLOCKS)).split()[0] == sent
    return writes


def test_grow_and_chap_rotation_under_a_writer_then_the_old_secret_is_refused(cluster, tmp_path):
    """shared-disk grows (and compute2 attaches it again) while compute1 writes to it, in the run that
    also rotates the CHAP secret and brings compute1-disk back to compute1."""
    extra = {'storage_node_volumes': GROWN_VOLUMES, 'storage_node_chap': NEW_CHAP}
    sessions_before = cluster.out('compute1', 'iscsiadm -m session')
    start_writer(cluster)
    rc, output, took, counts = site(cluster, tmp_path, 'grown', extra)
    writes = stop_writer(cluster)
    print('grow + re-attach + CHAP rotation + move back, under a writer: %.0f s, changed %s; %d writes, no I/O error'
          % (took, changed(counts), writes))
    # the running sessions survived the rotation: same session ids for what stayed attached
    kept = [line for line in sessions_before.splitlines() if ':volume-compute1-disk' not in line]
    assert set(kept) <= set(cluster.out('compute1', 'iscsiadm -m session').splitlines())
    for node in harness.COMPUTES:
        size = int(cluster.out(node, 'blockdev --getsize64 /dev/mapper/shared-disk'))
        assert size == 384 << 20, (node, size)
        assert 'shared-disk' in maps_on_two_running_paths(cluster.out(node, 'multipath -ll'))
    assert sha(cluster, 'compute1', '/dev/mapper/compute1-disk', PATTERN_MIB) == \
        cluster.out('compute1', 'sha256sum < /root/lifecycle-pattern').split()[0]
    # the node records carry the new secret; a login with the old one is refused, with the new one admitted
    record = 'iscsiadm -m node -T %sshared-disk -p %s' % (PREFIX, PORTAL_B)
    secret = cluster.out('compute1', "%s -S | sed -n 's/^node.session.auth.password = //p'" % record).strip()
    assert secret == NEW_CHAP['password']
    cluster.sh('compute1', '%s --logout' % record)
    cluster.sh('compute1', '%s -o update -n node.session.auth.password -v %s' % (record, CHAP['password']))
    refused = cluster.sh('compute1', '%s --login' % record, check=False)
    cluster.sh('compute1', '%s -o update -n node.session.auth.password -v %s' % (record, NEW_CHAP['password']))
    assert refused[0] == 24, refused
    cluster.sh('compute1', '%s --login' % record)
    cluster.wait_for('both paths of shared-disk on compute1', lambda: 'shared-disk' in maps_on_two_running_paths(
        cluster.out('compute1', 'multipath -ll')), 120)
    print('after the rotation: a login with the old secret refused (iscsiadm exit 24), with the new one admitted')
    assert_no_change(cluster, tmp_path, 'grow + CHAP rotation', extra)
