# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_session on the lab VM: the VM is both the tgt target and the initiator.

Two targets whose names are prefixes of each other (disk1, disk10), each reachable through
two portals of the same VM (127.0.0.1 and eth0's address). disk10 requires CHAP. The targets
are made with plain tgtadm; everything is removed at the end. The tests run in file order and
build on each other. That a record left automatic by state=logged_out logs in again at boot is
checked by the shared_lvm scenario, on the reboot and the power loss of its two computes (one of
each release), rather than with a reboot of this VM of its own.
"""

import time

import pytest

from ansible_collections.openblock.storage.plugins.module_utils.iscsi import parse_session_list

DISK1 = 'iqn.2026-11.test.iscsi:disk1'
DISK10 = 'iqn.2026-11.test.iscsi:disk10'
SIZES = {DISK1: 64 << 20, DISK10: 32 << 20}  # different sizes tell the two disks apart
DIR = '/var/tmp/itest-iscsi'
MNT = '/mnt/itest-iscsi'
CHAP_USER, CHAP_SECRET = 'itestuser', 'itestsecret12'
WRONG_SECRET = 'wrongsecret99'
LO = '127.0.0.1:3260'

CLEANUP = r'''
umount {mnt} 2>/dev/null; rmdir {mnt} 2>/dev/null
for t in {d1} {d10}; do
  iscsiadm -m node -T $t -u >/dev/null 2>&1
  iscsiadm -m node -T $t -o delete >/dev/null 2>&1
  tid=$(tgtadm --lld iscsi --mode target --op show | sed -n "s/^Target \([0-9]*\): $t\$/\1/p")
  [ -n "$tid" ] && tgtadm --lld iscsi --mode target --op delete --force --tid $tid
done
tgtadm --lld iscsi --mode account --op delete --user {user} 2>/dev/null
rm -rf {dir}
true
'''.format(mnt=MNT, d1=DISK1, d10=DISK10, user=CHAP_USER, dir=DIR)

SETUP = r'''
set -e
mkdir -p {dir}
truncate -s {s1} {dir}/disk1.img
truncate -s {s10} {dir}/disk10.img
tid=$(tgtadm --lld iscsi --mode target --op show | sed -n 's/^Target \([0-9]*\): .*/\1/p' | sort -n | tail -1)
tid=$(( ${{tid:-0}} + 1 ))
for t in disk1 disk10; do
  tgtadm --lld iscsi --mode target --op new --tid $tid -T iqn.2026-11.test.iscsi:$t
  tgtadm --lld iscsi --mode logicalunit --op new --tid $tid --lun 1 -b {dir}/$t.img
  tgtadm --lld iscsi --mode target --op bind --tid $tid -I ALL
  last=$tid; tid=$((tid + 1))
done
tgtadm --lld iscsi --mode account --op new --user {user} --password {secret}
tgtadm --lld iscsi --mode account --op bind --tid $last --user {user}
ip -4 -o addr show dev eth0 | awk '{{print $4}}' | cut -d/ -f1
'''.format(dir=DIR, s1=SIZES[DISK1], s10=SIZES[DISK10], user=CHAP_USER, secret=CHAP_SECRET)


@pytest.fixture(scope='module')
def portals(lab):
    """Targets set up on the VM; yields (loopback portal, eth0 portal). Removes everything after."""
    lab.sh(CLEANUP, check=False)
    eth = lab.out(SETUP).strip().splitlines()[-1] + ':3260'
    yield LO, eth
    lab.sh(CLEANUP, check=False)
    assert DISK1 not in lab.sh('iscsiadm -m node', check=False)[1]


def args(portals, **extra):
    base = dict(portals=list(portals), targets=[DISK1, DISK10], startup='automatic',
                node_auth=dict(username=CHAP_USER, password=CHAP_SECRET))
    base.update(extra)
    return base


def live_pairs(lab):
    rc, out, err = lab.sh('iscsiadm -m session', check=False)
    if rc != 0:
        return []
    return sorted((s['target'], s['portal']) for s in parse_session_list(out) if s['target'] in SIZES)


def test_bad_input_fails_before_anything_changes(lab, portals):
    result = lab.module('iscsi_session', dict(portals=['10.0.2.300', '[fd00::1'], targets=['IQN.bad'], wait=-1))
    assert result['failed'] and not result['changed']
    for part in ("'10.0.2.300'", "'[fd00::1'", "'IQN.bad'", 'wait=-1'):
        assert part in result['msg']
    assert live_pairs(lab) == []


def test_wrong_chap_fails_unchanged_and_leaves_no_record(lab, portals):
    result, output = lab.module('iscsi_session', args(
        [LO], targets=[DISK10], node_auth=dict(username=CHAP_USER, password=WRONG_SECRET)), raw=True)
    assert result['failed']
    assert result['changed'] is False
    assert 'CHAP authentication failed' in result['msg'] and DISK10 in result['msg']
    assert WRONG_SECRET not in output
    assert live_pairs(lab) == []
    assert DISK10 not in lab.sh('iscsiadm -m node', check=False)[1]  # the record it created is gone


def test_check_mode_leaves_a_stopped_iscsid_stopped(lab, portals):
    # Discovery would socket-activate iscsid, and its start loads the iSCSI kernel modules.
    assert live_pairs(lab) == []
    lab.sh('systemctl stop iscsid.service')
    result, output = lab.module('iscsi_session', args(portals), check=True, raw=True)
    assert result['changed'] and not result['failed']
    assert sum('--login' in c for c in result['commands']) == 4
    assert 'iscsid is not running and discovery would start it' in ' '.join(output.split()), output
    assert lab.sh('systemctl is-active iscsid.service', check=False)[1].strip() == 'inactive'
    assert DISK1 not in lab.sh('iscsiadm -m node', check=False)[1]


PREDICTED = {}  # the check-mode diff's after, compared with the real run's after below


def public(view):
    """What check mode can predict of a diff view: logged in or not, startup and CHAP user per pair."""
    return {pair: (v['logged_in'], v['record'] and (v['record']['startup'], v['record']['auth']))
            for pair, v in view.items()}


def test_check_mode_changes_nothing(lab, portals):
    result = lab.module('iscsi_session', args(portals), check=True, diff=True)
    assert result['changed'] and not result['failed']
    assert sum('--login' in c for c in result['commands']) == 4
    # before: nothing; after: the state the plan leads to, all four logged in with their records
    before, after = result['diff']['before'], result['diff']['after']
    assert not any(v['logged_in'] or v['record'] for v in before.values())
    assert sorted(after) == sorted('%s @ %s' % (t, p) for t in (DISK1, DISK10) for p in portals)
    assert public(after) == {pair: (True, ('automatic', {'method': 'CHAP', 'username': CHAP_USER, 'username_in': ''}))
                             for pair in after}
    PREDICTED.update(after)
    assert live_pairs(lab) == []
    assert DISK1 not in lab.sh('iscsiadm -m node', check=False)[1]  # still no records


def test_login_two_targets_through_two_portals(lab, portals):
    start = time.monotonic()
    result, output = lab.module('iscsi_session', args(portals), diff=True, raw=True)
    print('login of 4 pairs: %.1f s' % (time.monotonic() - start))
    assert result['changed'] and not result['failed']
    assert CHAP_SECRET not in output
    pairs = sorted((t, p) for t in (DISK1, DISK10) for p in portals)
    assert live_pairs(lab) == pairs
    assert sorted((s['target'], s['portal']) for s in result['sessions']) == pairs
    for session in result['sessions']:
        assert session['state'] == 'LOGGED_IN'
        [device] = session['devices']
        [link] = device['by_path']
        assert link == '/dev/disk/by-path/ip-%s-iscsi-%s-lun-1' % (session['portal'], session['target'])
        # the link, the device and the target agree: right disk behind the right path
        assert lab.out('readlink -f %s' % link).strip() == device['path']
        assert int(lab.out('blockdev --getsize64 %s' % device['path'])) == SIZES[session['target']]
    assert {n['startup'] for n in result['nodes']} == {'automatic'} and len(result['nodes']) == 4
    assert all(v['logged_in'] for v in result['diff']['after'].values())
    assert not any(v['logged_in'] for v in result['diff']['before'].values())
    if PREDICTED:  # check mode predicted this after-state
        assert public(PREDICTED) == public(result['diff']['after'])


def test_rerun_changes_nothing(lab, portals):
    result = lab.module('iscsi_session', args(portals))
    assert not result['changed'] and result['commands'] == []
    assert len(result['sessions']) == 4


def test_logout_of_a_mounted_disk_is_refused_without_force(lab, portals):
    link = '/dev/disk/by-path/ip-%s-iscsi-%s-lun-1' % (LO, DISK1)
    lab.out('mkfs.ext4 -q -F %s && mkdir -p %s && mount %s %s' % (link, MNT, link, MNT))
    try:
        result = lab.module('iscsi_session', dict(portals=[LO], targets=[DISK1], state='logged_out'))
        assert result['failed'] and not result['changed']
        assert 'refusing to log out of %s at %s' % (DISK1, LO) in result['msg']
        assert 'mounted on %s' % MNT in result['msg'] and 'force=true' in result['msg']
        assert (DISK1, LO) in live_pairs(lab)
    finally:
        lab.out('umount %s' % MNT)


def test_logout_of_one_portal_leaves_the_other(lab, portals):
    eth = portals[1]
    result = lab.module('iscsi_session', dict(portals=[eth], targets=[DISK1], state='logged_out'))
    assert result['changed'] and not result['failed']
    assert result['commands'] == ['iscsiadm -m node -T %s -p %s -I default --logout' % (DISK1, eth)]
    assert live_pairs(lab) == sorted([(DISK1, LO), (DISK10, LO), (DISK10, eth)])
    # the record stays, still automatic: the next boot logs in again (shown by the shared_lvm scenario)
    assert lab.out('iscsiadm -m node -T %s -p %s | grep "^node.startup ="' % (DISK1, eth)).split() == \
        ['node.startup', '=', 'automatic']
    again = lab.module('iscsi_session', dict(portals=[eth], targets=[DISK1], state='logged_out'))
    assert not again['changed']


def test_absent_removes_sessions_and_records(lab, portals):
    result = lab.module('iscsi_session', dict(portals=list(portals), targets=[DISK1, DISK10], state='absent'))
    assert result['changed'] and not result['failed']
    assert live_pairs(lab) == []
    assert DISK1 not in lab.sh('iscsiadm -m node', check=False)[1]
    assert not lab.module('iscsi_session', dict(portals=list(portals), targets=[DISK1, DISK10],
                                                state='absent'))['changed']
