"""Verifier of the `shared_lvm` scenario: the shared VG on storage1's LUN, seen by compute1 and compute2.

The tests run in file order and build on one another: locks first, then a reboot of compute2 (the
lab's one clean compute reboot: logins, lock-start and consumer in that order, and every path back,
including one iscsi_session logged out before), then lvmlockd killed on compute1 and the recovery
playbook, then compute1's power cut while it holds an LV exclusively (its paths come back by
themselves as well). Each prints what it measured. (The storage outage, which every compute's leases
outlive only 80 s, is the last of the faults: tests/system/test_faults.py.)
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
# node() and run(), the helpers of the default scenario's verifier (commands through labctl ssh)
sys.path.insert(0, str(REPO / 'molecule' / 'default' / 'tests'))
sys.path.insert(0, str(REPO / 'tests' / 'system'))
from test_site import node, run  # noqa: E402  pylint: disable=wrong-import-position
import stand_in  # noqa: E402  pylint: disable=wrong-import-position
from lab_shell import LABCTL  # noqa: E402  pylint: disable=wrong-import-position
from multipath_maps import maps_on_two_running_paths  # noqa: E402  pylint: disable=wrong-import-position
# molecule's inventory directory: labctl writes the lab hosts into lab.yml there, and the
# inventory's group_vars/host_vars are linked in beside it.
INVENTORY = os.path.dirname(os.environ['MOLECULE_INVENTORY_FILE'])
GROUP_VARS = yaml.safe_load((REPO / 'inventories/lab/group_vars/compute_nodes.yml').read_text())
VG = GROUP_VARS['shared_lvm_vg']
ALIAS = GROUP_VARS['shared_lvm_devices'][0]
COMPUTES = ['compute1', 'compute2']
BIN = Path(sys.executable).parent
# How long compute2 tries to take over the LV of a compute whose power went (and the bound of its time off)
TAKEOVER_LIMIT = 400
# storage1's second portal (the lab topology's storage-b address)
PORTAL_B = '10.50.2.10:3260'


def leases(host):
    """LV UUID -> 'sh' / 'ex' from sanlock's leases on this host."""
    found = {}
    for line in run(host, 'sanlock client status').splitlines():
        match = re.match(r'^r lvm_%s:([^:]+):.*?:(SH|\d+) p' % re.escape(VG), line)
        if match:
            found[match.group(1)] = 'sh' if match.group(2) == 'SH' else 'ex'
    return found


def modes(host):
    """LV name -> exclusive / shared / inactive on this host (the lease says which)."""
    report = json.loads(run(host, 'LC_ALL=C lvs --reportformat json --binary -o lv_name,lv_uuid,lv_active_locally %s'
                            % VG))['report'][0]['lv']
    held = leases(host)
    return dict((lv['lv_name'], 'inactive' if lv['lv_active_locally'] != '1'
                 else {'sh': 'shared', 'ex': 'exclusive'}.get(held.get(lv['lv_uuid']), 'unlocked'))
                for lv in report)


def log_out_of_one_path(name):
    """iscsi_session state=logged_out on the second portal of NAME-disk: the session goes and the node
    record stays automatic, so the host's next boot logs in again (the reboot and power-loss tests
    check it, on each release of the lab, instead of a reboot of their own in the module tests)."""
    target = 'iqn.2010-10.org.openstack:volume-%s-disk' % name
    # force: multipathd holds the path's disk; the map keeps its other path
    args = {'portals': [PORTAL_B], 'targets': [target], 'state': 'logged_out', 'force': True}
    proc = subprocess.run([str(BIN / 'ansible'), '-i', INVENTORY, name, '-m', 'openblock.storage.iscsi_session',
                           '-a', json.dumps(args)], capture_output=True, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_FORCE_COLOR='0'))
    assert proc.returncode == 0 and '| CHANGED' in proc.stdout, proc.stdout[-3000:] + proc.stderr[-1000:]
    host = node(name)
    assert not has_session(host, target)
    assert run(host, 'iscsiadm -m node -T %s -p %s | grep "^node.startup ="' % (target, PORTAL_B)).split() == \
        ['node.startup', '=', 'automatic']
    return target


def has_session(host, target):
    return re.search(r'\] %s,\d+ %s(\s|$)' % (re.escape(PORTAL_B), re.escape(target)),
                     run(host, 'iscsiadm -m session')) is not None


def wait_for_two_running_paths(host):
    """The sessions and maps come back by themselves after a boot: two running paths for every map."""
    deadline = time.monotonic() + 180
    while True:
        maps = run(host, 'multipath -ll')
        if maps_on_two_running_paths(maps):
            return
        assert time.monotonic() < deadline, maps
        time.sleep(5)


def playbook(path, *args):
    started = time.monotonic()
    proc = subprocess.run([str(BIN / 'ansible-playbook'), '-i', INVENTORY, str(REPO / path)] + list(args),
                          capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_FORCE_COLOR='0'))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout, time.monotonic() - started


def test_vg_lives_on_the_multipath_lun_on_both_computes():
    for name in COMPUTES:
        host = node(name)
        pvs = json.loads(run(host, 'LC_ALL=C pvs --reportformat json -o pv_name,vg_name --select vg_name=%s' % VG))
        assert [pv['pv_name'] for pv in pvs['report'][0]['pv']] == [ALIAS]
        assert run(host, 'LC_ALL=C vgs --noheadings -o vg_lock_type %s' % VG).strip() == 'sanlock'
        # the map has its two paths (one per portal), which LVM does not use
        paths = run(host, 'multipath -ll %s' % Path(ALIAS).name)
        assert len(re.findall(r'\d+:\d+:\d+:\d+\s+sd[a-z]+', paths)) == 2, paths
        assert run(host, 'sanlock client status').count('s lvm_%s:' % VG) == 1


def test_exclusive_lv_is_refused_on_the_other_host():
    assert modes(node('compute1'))['disk-compute1'] == 'exclusive'
    result = node('compute2').run('LC_ALL=C lvchange --activate ey %s/disk-compute1' % VG)
    assert result.rc == 5 and 'locked by other host' in result.stderr, result.stderr
    # and through the module: the error names the LV
    proc = subprocess.run([str(BIN / 'ansible'), 'compute2', '-i', INVENTORY, '-m', 'openblock.storage.sanlock_vg',
                           '-a', json.dumps({'name': VG, 'lvs': [{'name': 'disk-compute1', 'activation': 'exclusive'}]})],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert '%s/disk-compute1 is locked by another host' % VG in proc.stdout, proc.stdout


def test_shared_activation_works_on_both():
    for name in COMPUTES:
        assert modes(node(name))['images'] == 'shared'
        assert node(name).run('test -e /dev/%s/images' % VG).rc == 0


def test_after_a_reboot_the_vg_is_lock_started_before_the_consumer():
    host = node('compute2')
    run(host, stand_in.install_command(VG))
    # active LVs: the shutdown deactivates them before lvmlockd's lock-stop (the role's drop-in)
    assert modes(host)['images'] == 'shared'
    logged_out = log_out_of_one_path('compute2')
    started = time.monotonic()
    subprocess.run(LABCTL + ['reboot', 'compute2'], check=True)
    host = node('compute2')
    run(host, stand_in.WAIT_COMMAND)
    boot = time.monotonic() - started
    lockstart = run(host, 'systemctl show -p ActiveEnterTimestampMonotonic --value lvmlocks.service').strip()
    consumer = run(host, 'systemctl show -p InactiveExitTimestampMonotonic --value nova-compute.service').strip()
    assert 0 < int(lockstart) <= int(consumer), (lockstart, consumer)
    previous = run(host, 'journalctl -b -1 -o short-monotonic --no-pager -u lvmlocks.service')
    assert re.search(r'0 logical volume\(s\) in volume group "%s" now active' % VG, previous), previous
    # the order of the boot: the iSCSI logins, then the lock-start, then the consumer
    journal = run(host, 'journalctl -b -o short-monotonic --no-pager -u open-iscsi.service -u lvmlocks.service '
                        '-u nova-compute.service')
    lines = journal.splitlines()

    def first(pattern):
        found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert found, '%r not in the journal:\n%s' % (pattern, journal)
        return found[0]

    assert first(r'Finished open-iscsi.service') < first(r'Finished lvmlocks.service') < first(r'consumer-started'), \
        journal
    assert run(host, 'systemctl is-active nova-compute.service').strip() == 'active'
    assert 's lvm_%s:2:' % VG in run(host, 'sanlock client status')
    wait_for_two_running_paths(host)
    assert has_session(host, logged_out), 'the path logged out before the reboot did not come back'
    print('compute2 reboot %.0f s; lock-start done at %.1f s after boot, consumer at %.1f s'
          % (boot, int(lockstart) / 1e6, int(consumer) / 1e6))
    # bring the LVs back as the inventory wants them
    playbook('playbooks/shared_lvm.yml', '--limit', 'compute2')
    assert modes(host)['images'] == 'shared' and modes(host)['disk-compute2'] == 'exclusive'


def test_recovery_after_lvmlockd_is_killed():
    host = node('compute1')
    before = modes(host)
    assert before['images'] == 'shared' and before['disk-compute1'] == 'exclusive'
    run(host, 'pkill -9 -x lvmlockd; sleep 1; ! systemctl is-active --quiet lvmlockd')
    assert 'ORPHAN' in run(host, 'sanlock client status')
    out, took = playbook('playbooks/recover_shared_lvm.yml', '--limit', 'compute1')
    after = modes(host)
    assert after == before, (before, after)
    assert 'ORPHAN' not in run(host, 'sanlock client status')
    print('recovery of compute1: %.0f s' % took)
    # safe to re-run: a sound host is left alone
    out = playbook('playbooks/recover_shared_lvm.yml', '--limit', 'compute1')[0]
    assert re.search(r'compute1\s+: ok=\d+\s+changed=0\s', out), out[-1500:]
    assert modes(host) == before


def test_an_exclusive_lv_of_a_compute_that_loses_power_is_taken_over_only_once_its_lease_expires():
    """compute1's power goes while it holds disk-compute1 exclusively. compute2 is refused the LV while
    compute1's sanlock lease could still be renewed, and gets it once sanlock declares compute1 dead
    (host_dead_seconds: 140 s after the last renewal, with lvmlockd's 10 s I/O timeout; later when
    compute2's own renewals are slow); then it lets go. compute1 stays off until then (labctl's
    time off ends at our SIGUSR1), and the play gives it its LVs again once it is back."""
    target = '%s/disk-compute1' % VG
    assert modes(node('compute1'))['disk-compute1'] == 'exclusive'
    logged_out = log_out_of_one_path('compute1')
    other = node('compute2')
    power = subprocess.Popen(LABCTL + ['reboot', '--power-loss', '--off', str(TAKEOVER_LIMIT), 'compute1'],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = time.monotonic()
    refused, took_over = [], None
    try:
        while time.monotonic() - killed < TAKEOVER_LIMIT:
            result = other.run('LC_ALL=C lvchange --activate ey %s' % target)
            if result.rc == 0:
                took_over = time.monotonic() - killed
                break
            refused.append((round(time.monotonic() - killed), result.rc, result.stderr.strip()[-200:]))
            time.sleep(5)
        power.send_signal(signal.SIGUSR1)  # compute1 may come back now
        assert took_over is not None, refused[-3:]
        # not before compute1 could be dead: the first attempts were refused, none succeeded early
        assert refused and refused[0][0] < 20, refused[:3]
        assert took_over >= 100, (took_over, refused)
        assert modes(other)['disk-compute1'] == 'exclusive'
        run(other, 'lvchange --activate n %s' % target)
    finally:
        output = power.communicate(timeout=900)[0]
    assert power.returncode == 0, output
    print('compute1 power loss: compute2 refused %d time(s), took disk-compute1 over %.0f s after the power went'
          % (len(refused), took_over))
    host = node('compute1')
    wait_for_two_running_paths(host)
    assert has_session(host, logged_out), 'the path logged out before the power loss did not come back'
    playbook('playbooks/shared_lvm.yml', '--limit', 'compute1')
    assert modes(node('compute1'))['disk-compute1'] == 'exclusive'


def test_the_shared_vg_play_is_idempotent_after_all_of_this():
    out = playbook('playbooks/shared_lvm.yml')[0]
    for name in COMPUTES:
        assert re.search(r'%s\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0' % name, out), out[-2000:]
