"""Faults the site survives, on the converged cinder lab (after the `default` and `shared_lvm` scenarios).

Each test records the state before, injects one fault, waits (bounded) for recovery and checks the
state after; writes in flight go through compute1's multipath device and are checked with sha256
on both ends. Tests run in file order and each leaves the lab converged for the next, but the last
(storage1's power cut), after which the computes' leases of the shared VG are lost. A compute
node's reboot is the shared_lvm scenario's (logins, lock-start and consumer in order, paths back).
"""

import json
import re
import subprocess
import time
import tomllib

import yaml
from conftest import BIN, COMPUTES, REPO, assert_same_state, recap
from multipath_maps import maps_on_two_running_paths

VOLUME = 'compute1-disk'
MAP = '/dev/mapper/%s' % VOLUME
LV = '/dev/cinder-volumes/volume-%s' % VOLUME
WRITE_MIB = 32
TOPOLOGY = tomllib.loads((REPO / 'lab/topologies/cinder.toml').read_text())
# the shared VG of the lab inventory, on a LUN of storage1
SHARED_VG = yaml.safe_load((REPO / 'inventories/lab/group_vars/compute_nodes.yml').read_text())['shared_lvm_vg']
# sanlock gives up a lease it could not renew for 8 I/O timeouts (lvmlockd's: 10 s): 80 s
LEASE_RENEWAL_LIMIT = 80


def targets(cluster):
    """The tgt configuration that must survive: targets, LUNs, ACLs and accounts, not the sessions,
    nor the target ids, which tgt hands out again in its own order after a restart."""
    show = cluster.out('storage1', 'tgtadm --lld iscsi --mode target --op show '
                                   '| sed "/I_T nexus information:/,/LUN information:/d"')
    blocks = sorted(re.sub(r'^Target \d+: ', 'Target: ', block) for block in re.split(r'^(?=Target \d+: )', show, flags=re.M))
    return blocks, cluster.out('storage1', 'tgtadm --lld iscsi --mode account --op show')


def paths_healthy(cluster):
    """True when every map on every compute has 2 paths, all active and ready, and every session is up."""
    for node in COMPUTES:
        names = maps_on_two_running_paths(cluster.out(node, 'multipath -ll'))
        if not names:
            return False
        sessions = cluster.out(node, 'iscsiadm -m session -P 1')
        if len(re.findall(r'iSCSI Session State: LOGGED_IN', sessions)) != 2 * len(names):
            return False
    return True


def start_write(cluster, flags='direct'):
    """Write fresh random data through the multipath device, slowly enough that a fault lands mid-write.
    With flags='direct,dsync' each 1 MiB write is acknowledged only once it is stable (the kernel sends
    a cache flush after it, which tgt turns into an fdatasync of the LV)."""
    cluster.sh('compute1', 'head -c %dM /dev/urandom > /root/fault-pattern && rm -f /root/fault-write.rc' % WRITE_MIB)
    # every descriptor of the background job goes to files, so that ssh returns at once
    cluster.sh('compute1', "( sh -c 'for i in $(seq 0 %d); do dd if=/root/fault-pattern of=%s bs=1M skip=$i seek=$i "
                           "count=1 oflag=%s status=none || exit 1; sleep 0.3; done; echo 0 > /root/fault-write.rc' "
                           "|| echo 1 > /root/fault-write.rc ) < /dev/null > /root/fault-write.log 2>&1 &"
               % (WRITE_MIB - 1, MAP, flags))
    time.sleep(2)
    assert cluster.sh('compute1', 'test -e /root/fault-write.rc', check=False)[0] != 0, 'the write ended too early'


def finish_write(cluster, timeout):
    """Wait for the write to end; check that it succeeded and that both ends hold the same bytes."""
    cluster.wait_for('the write through %s' % MAP,
                     lambda: cluster.sh('compute1', 'test -e /root/fault-write.rc', check=False)[0] == 0, timeout)
    assert cluster.out('compute1', 'cat /root/fault-write.rc').strip() == '0', cluster.out('compute1', 'cat /root/fault-write.log')
    sent = cluster.out('compute1', 'sha256sum < /root/fault-pattern').split()[0]
    read = 'dd if=%s bs=1M count=%d iflag=direct status=none | sha256sum'
    assert cluster.out('compute1', read % (MAP, WRITE_MIB)).split()[0] == sent
    assert cluster.out('storage1', read % (LV, WRITE_MIB)).split()[0] == sent


def shared_vg(cluster):
    """compute -> sanlock_vg's query of the shared VG there (one ad-hoc run for both computes)."""
    proc = subprocess.run([str(BIN / 'ansible'), 'compute_nodes', '-o', '-m', 'openblock.storage.sanlock_vg',
                           '-a', json.dumps({'name': SHARED_VG, 'state': 'query'})], cwd=REPO, env=cluster.env,
                          capture_output=True, text=True, check=False, timeout=600)
    found = dict((host, json.loads(body)) for host, body in re.findall(r'^(\S+) \| \S+ => (\{.*\})$', proc.stdout, re.M))
    assert sorted(found) == COMPUTES, proc.stdout[-3000:] + proc.stderr[-2000:]
    return found


def assert_leases_held(cluster):
    """Each compute holds its lease of the shared VG and the query finds nothing wrong."""
    for node, query in shared_vg(cluster).items():
        assert query['lockspace']['lease'] == 'held' and not query['problems'], (node, query)


def test_check_mode_on_the_converged_lab_reports_no_change(cluster):
    before = cluster.state()
    output, took = cluster.playbook('playbooks/site.yml', '--check')[1:]
    assert_same_state(before, cluster.state())
    counts = recap(output)
    assert sorted(counts) == ['compute1', 'compute2', 'storage1'], output[-3000:]
    assert all(f['changed'] == 0 and f['failed'] == 0 for f in counts.values()), counts
    print('site.yml --check on the converged lab: %.0f s, changed=0 on every host' % took)


def test_two_runs_at_once_serialize(cluster, tmp_path):
    """The same play started twice at once: each module call applies once, the other finds it done."""
    names = ['race-%d' % i for i in range(4)]
    play = tmp_path / 'race.yml'
    play.write_text(json.dumps([{
        'name': 'Carve and export volumes', 'hosts': 'storage1', 'gather_facts': False,
        'vars': {'names': names},
        'tasks': [
            {'name': 'volumes', 'openblock.storage.lvm_thinvol': {
                'vg': 'cinder-volumes', 'pool': 'cinder-volumes-pool',
                'volumes': [{'name': 'volume-' + n, 'size': '64M'} for n in names]}},
            {'name': 'targets', 'openblock.storage.tgt_target': {
                'targets': [{'iqn': 'iqn.2010-10.org.openstack:volume-' + n, 'initiators': ['iqn.2026-11.test:none'],
                             'luns': [{'lun': 1, 'path': '/dev/cinder-volumes/volume-' + n}]} for n in names]}},
        ]}]))
    command = [str(BIN / 'ansible-playbook'), str(play), '-v']
    runs = [subprocess.Popen(command, cwd=REPO, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for dummy in range(2)]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    try:
        assert [run.returncode for run in runs] == [0, 0], outputs
        for task in ('volumes', 'targets'):
            changed = [re.search(r'TASK \[%s\].*?\n(changed|ok): \[storage1\]' % task, out, re.S).group(1)
                       for out in outputs]
            assert sorted(changed) == ['changed', 'ok'], (task, changed)
        show = cluster.out('storage1', 'tgtadm --lld iscsi --mode target --op show')
        for name in names:
            assert show.count(':volume-%s\n' % name) == 1, show
            assert cluster.sh('storage1', 'test -b /dev/cinder-volumes/volume-%s' % name, check=False)[0] == 0
    finally:
        cleanup = tmp_path / 'cleanup.yml'
        cleanup.write_text(json.dumps([{
            'name': 'Remove the race volumes', 'hosts': 'storage1', 'gather_facts': False, 'tasks': [
                {'name': 'targets', 'openblock.storage.tgt_target': {'targets': [
                    {'iqn': 'iqn.2010-10.org.openstack:volume-' + n, 'state': 'absent'} for n in names]}},
                {'name': 'volumes', 'openblock.storage.lvm_thinvol': {
                    'vg': 'cinder-volumes', 'pool': 'cinder-volumes-pool',
                    'volumes': [{'name': 'volume-' + n, 'state': 'absent'} for n in names]}}]}]))
        subprocess.run([str(BIN / 'ansible-playbook'), str(cleanup)], cwd=REPO, env=cluster.env, check=True,
                       capture_output=True)


def test_tgt_restart_during_a_write(cluster):
    """tgtd restarted under a writer: the targets come back as they were, the write ends without error,
    and the restart is short enough that the computes' sanlock keeps its leases of the shared VG, whose
    LUN storage1 exports too (a stop that failed and waited for systemd's 90 s kill lost them all)."""
    before = targets(cluster)
    assert paths_healthy(cluster)
    start_write(cluster)
    started = time.monotonic()
    cluster.sh('storage1', 'systemctl restart tgt')
    took = time.monotonic() - started
    assert took < LEASE_RENEWAL_LIMIT / 2, 'systemctl restart tgt took %.0f s' % took
    finish_write(cluster, timeout=240)
    assert targets(cluster) == before
    cluster.wait_for('both paths of every map active again after the tgt restart', lambda: paths_healthy(cluster), 180)
    assert_leases_held(cluster)
    print('tgt restart: %.0f s, the shared VG\'s leases held on both computes' % took)


def test_storage_link_down_during_a_write(cluster):
    address = TOPOLOGY['nodes']['storage1']['networks']['storage-a']
    link = cluster.out('storage1', "ip -o -4 addr show | awk '$4 ~ /^%s\\// {print $2}'" % address.replace('.', '\\.'))
    link = link.strip()
    assert link, 'no interface holds %s on storage1' % address
    assert paths_healthy(cluster)
    start_write(cluster)
    cluster.sh('storage1', 'ip link set %s down' % link)
    try:
        # the write completes while the link is still down: on the other path
        finish_write(cluster, timeout=240)
        maps = cluster.out('compute1', 'multipath -ll %s' % VOLUME)
        assert len(re.findall(r'active ready\s+running', maps)) == 1, maps
    finally:
        cluster.sh('storage1', 'ip link set %s up' % link)
    cluster.wait_for('both paths active again after the link came back', lambda: paths_healthy(cluster), 240)


def test_storage_node_power_loss_during_a_synchronous_write(cluster):
    """storage1's qemu killed under a writer whose writes are acknowledged once stable, and kept off
    long enough that the computes' sanlock cannot renew its leases of the shared VG (on storage1's
    LUN). Every write the initiator saw acknowledged must be on disk, which the checksum of the whole
    pattern on both ends shows (each MiB is written once, after the one before was acknowledged); the
    write must end without an I/O error (multipath queues while no path is there); the VG, the pool
    and the targets come back by themselves. The shared VG's locks do not, and sanlock_vg's query says
    so on each compute, naming the way out. (The last test: it leaves the leases lost. The recovery
    playbook's run after a killed lvmlockd is the shared_lvm scenario's; a clean stop of tgtd is the
    tgt restart test's; a clean reboot is no harder than this.)"""
    before = targets(cluster)
    assert_leases_held(cluster)
    boot_id = cluster.out('storage1', 'cat /proc/sys/kernel/random/boot_id')
    start_write(cluster, flags='direct,dsync')
    time.sleep(4)  # a few MiB acknowledged before the power goes
    assert cluster.sh('compute1', 'test -e /root/fault-write.rc', check=False)[0] != 0, 'the write ended too early'
    # the renewal limit runs from the last renewal (at most 20 s before the cut); the boot adds a minute
    took = cluster.reboot('storage1', power_loss=True, off=LEASE_RENEWAL_LIMIT - 50)
    assert cluster.out('storage1', 'cat /proc/sys/kernel/random/boot_id') != boot_id
    finish_write(cluster, timeout=420)
    assert targets(cluster) == before
    pool = cluster.out('storage1', 'lvs --noheadings -o lv_attr cinder-volumes/cinder-volumes-pool').strip()
    assert pool.startswith('t') and pool[4] == 'a', pool
    # LVM checks a thin pool's metadata (thin_check) before it activates it: active means clean.
    assert cluster.out('storage1', 'lvmconfig --type full global/thin_check_executable').strip().endswith(
        '"/usr/sbin/thin_check"')
    journal = cluster.out('storage1', 'journalctl -b --no-pager -o cat | grep -i -E "thin_check|needs_check" || true')
    assert 'fail' not in journal.lower() and 'needs_check' not in journal, journal
    cluster.wait_for('both paths of every map active again after the power loss', lambda: paths_healthy(cluster), 240)
    print('storage1 power loss: back in %.0f s' % took)
    # the storage is back, the leases are not: the query says so, naming the LVs still active and the way out
    lost = shared_vg(cluster)
    for node, query in lost.items():
        assert query['lockspace']['lease'] == 'lost', (node, query['lockspace'])
        assert any('recover_shared_lvm.yml' in problem for problem in query['problems']), (node, query['problems'])
    print('shared VG after the outage: lease lost on %s, reported by the query' % ' and '.join(sorted(lost)))
