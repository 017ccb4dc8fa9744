# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsiadm parsers and the iscsi_session planner, fed with output recorded on the lab VM
(open-iscsi 2.1.8, Debian 12; targets served by tgt on 127.0.0.1 and 10.0.2.15)."""

from pathlib import Path

import pytest

from ansible_collections.openblock.storage.plugins.module_utils import iscsi

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'iscsi'
DISK1 = 'iqn.2026-11.test.iscsi:disk1'
DISK10 = 'iqn.2026-11.test.iscsi:disk10'
LO, ETH = '127.0.0.1:3260', '10.0.2.15:3260'
AUTH = {'username': 'itestuser', 'password': 'itestsecret12', 'username_in': None, 'password_in': None}


def rec(name):
    """(rc, stdout, stderr) of a recorded command."""
    return (int((FIXTURES / (name + '.rc')).read_text()), (FIXTURES / (name + '.stdout')).read_text(),
            (FIXTURES / (name + '.stderr')).read_text())


def nodes_of(name):
    rc, out, err = rec(name)
    return [iscsi.node_from_record(r) for r in iscsi.parse_records(out)] if rc == 0 else []


def sessions_of(name):
    rc, out, err = rec(name)
    return iscsi.parse_session_detail(out) if rc == 0 else []


def argvs(steps):
    return [' '.join(a.argv) for step in steps for a in step.actions]


# ---------------------------------------------------------------- exit codes

@pytest.mark.parametrize('name, rc, message', [
    ('session_none', iscsi.RC_NO_OBJECTS, 'No active sessions'),
    ('session_p3_none', iscsi.RC_NO_OBJECTS, 'No active sessions'),
    ('node_none', iscsi.RC_NO_OBJECTS, 'No records found'),
    ('node_show_none', iscsi.RC_NO_OBJECTS, 'No records found'),
    ('login_no_record', iscsi.RC_NO_OBJECTS, 'No records found'),
    ('login_already', iscsi.RC_SESSION_EXISTS, 'already present'),
    ('login_chap_wrong', iscsi.RC_LOGIN_AUTH_FAILED, 'authorization failure'),
    ('logout_no_session', iscsi.RC_NO_OBJECTS, 'No matching sessions'),
    ('discoverydb_missing', iscsi.RC_DB_ERROR, 'not found'),
])
def test_recorded_exit_codes_are_the_ones_the_module_handles(name, rc, message):
    got_rc, out, err = rec(name)
    assert got_rc == rc
    assert message in err
    assert iscsi.parse_targets(out) == [] and iscsi.parse_session_list(out) == []


def test_no_sessions_parse_to_nothing():
    assert iscsi.parse_session_list(rec('session_none')[1]) == []
    assert iscsi.parse_session_detail(rec('session_p3_none')[1]) == []


# ---------------------------------------------------------------- parsers

def test_session_list_keeps_disk1_and_disk10_apart():
    sessions = iscsi.parse_session_list(rec('session_partial')[1])
    assert [(s['sid'], s['target'], s['portal'], s['tpgt']) for s in sessions] == [
        (3, DISK10, LO, 1), (5, DISK1, ETH, 1)]
    pairs = {(s['target'], s['portal']) for s in sessions}
    assert (DISK1, LO) not in pairs  # the disk10 session at the same portal does not count


def test_session_list_four():
    sessions = iscsi.parse_session_list(rec('session_four')[1])
    assert sorted((s['target'], s['portal']) for s in sessions) == sorted(
        [(DISK1, LO), (DISK1, ETH), (DISK10, LO), (DISK10, ETH)])
    assert {s['transport'] for s in sessions} == {'tcp'}


def test_session_detail_gives_sid_state_and_disks_per_portal():
    sessions = sessions_of('session_p3_four')
    got = {(s['target'], s['portal']): (s['sid'], s['iface'], s['state'], s['connection_state'],
                                        [(d['name'], d['lun']) for d in s['devices']]) for s in sessions}
    assert got == {
        (DISK10, LO): (3, 'default', 'LOGGED_IN', 'LOGGED IN', [('sda', 1)]),
        (DISK1, ETH): (5, 'default', 'LOGGED_IN', 'LOGGED IN', [('sdc', 1)]),
        (DISK1, LO): (6, 'default', 'LOGGED_IN', 'LOGGED IN', [('sdb', 1)]),
        (DISK10, ETH): (8, 'default', 'LOGGED_IN', 'LOGGED IN', [('sdd', 1)]),
    }
    # the list and the detail agree on which sessions exist
    listed = {(s['sid'], s['target'], s['portal']) for s in iscsi.parse_session_list(rec('session_four')[1])}
    assert listed == {(s['sid'], s['target'], s['portal']) for s in sessions}


def test_node_list_and_discovery_output():
    assert sorted((n['target'], n['portal'], n['tpgt']) for n in iscsi.parse_targets(rec('node_four')[1])) == sorted(
        [(DISK1, LO, 1), (DISK1, ETH, 1), (DISK10, LO, 1), (DISK10, ETH, 1)])
    assert iscsi.parse_targets(rec('discovery_lo')[1]) == [
        {'target': DISK1, 'portal': LO, 'tpgt': 1}, {'target': DISK10, 'portal': LO, 'tpgt': 1}]
    assert iscsi.parse_targets(rec('discovery_chap_nonpersistent')[1]) == iscsi.parse_targets(rec('discovery_lo')[1])


def test_discovery_that_cannot_connect_finds_nothing():
    rc, out, err = rec('discovery_refused')
    assert rc not in (0, iscsi.RC_NO_OBJECTS)
    assert iscsi.parse_targets(out) == []
    assert 'Connection refused' in err


def test_node_records_with_secrets_and_the_public_view_without():
    nodes = nodes_of('node_show_four')
    by_pair = {(n['target'], n['portal']): n for n in nodes}
    assert len(nodes) == 4
    chap = by_pair[(DISK10, LO)]
    assert chap['settings']['node.session.auth.password'] == 'itestsecret12'
    assert chap['settings']['node.session.auth.username_in'] == ''  # <empty>
    assert by_pair[(DISK10, ETH)]['settings']['node.startup'] == 'automatic'
    public = iscsi.public_node(chap)
    assert public == {'target': DISK10, 'portal': LO, 'tpgt': 1, 'iface': 'default', 'startup': 'manual',
                      'auth': {'method': 'CHAP', 'username': 'itestuser', 'username_in': ''}}
    assert 'itestsecret12' not in repr(public)


def test_records_shown_without_s_hide_the_password():
    masked = {(n['target'], n['portal']): n for n in nodes_of('node_show_four_masked')}
    assert masked[(DISK10, LO)]['settings']['node.session.auth.password'] == '********'


def test_discoverydb_record():
    record = iscsi.parse_records(rec('discoverydb_show')[1])
    assert len(record) == 1
    assert record[0]['discovery.sendtargets.auth.username'] == 'discuser'
    assert record[0]['discovery.sendtargets.address'] == '127.0.0.1'


def test_ipv6_portal_text():
    assert iscsi.portal_key('[fd00::10]:3260,1') == ('[fd00::10]:3260', 1)
    assert iscsi.portal_key('10.0.2.15:3260') == ('10.0.2.15:3260', None)


# ---------------------------------------------------------------- planner

def plan(state='logged_in', targets=(DISK1, DISK10), portals=(LO, ETH), startup=None, node_auth=None, force=False,
         nodes='node_show_none', sessions='session_p3_none', discovered='discovery_lo', usage=None):
    nodes, sessions = nodes_of(nodes), sessions_of(sessions)
    found = iscsi.parse_targets(rec(discovered)[1]) if discovered else []
    if discovered:  # tgt answers at each portal with that portal; the lab recorded 127.0.0.1
        found += [dict(d, portal=ETH) for d in found]
    pairs, errors = iscsi.resolve_pairs(state, list(targets), list(portals), 'default', nodes, sessions, found)
    steps, plan_errors = iscsi.plan_nodes(state, pairs, 'default', startup, node_auth, force, nodes, sessions, found,
                                          usage or {})
    return pairs, steps, errors + plan_errors


def test_fresh_host_creates_records_and_logs_in_four_pairs():
    pairs, steps, errors = plan(startup='automatic')
    assert errors == []
    assert len(pairs) == 4
    assert [s.key for s in steps] == pairs
    first = argvs(steps)[:3]
    assert first == [
        'iscsiadm -m node -o new -T %s -p %s,1 -I default' % (DISK1, LO),
        'iscsiadm -m node -T %s -p %s -I default -o update -n node.startup -v automatic' % (DISK1, LO),
        'iscsiadm -m node -T %s -p %s -I default --login' % (DISK1, LO),
    ]
    login = steps[0].login
    assert login.ok_rcs == (0, iscsi.RC_SESSION_EXISTS, iscsi.RC_LOGIN_AUTH_FAILED)
    # undo of a refused login removes the record this run created
    assert [' '.join(a.argv) for a in steps[0].undo] == ['iscsiadm -m node -T %s -p %s -I default -o delete' % (DISK1, LO)]


def test_converged_host_plans_nothing():
    pairs, steps, errors = plan(nodes='node_show_four', sessions='session_p3_four')
    assert (steps, errors) == ([], [])


def test_disk10_session_does_not_make_disk1_logged_in():
    # recorded: disk10 at 127.0.0.1 and disk1 at 10.0.2.15 logged in; disk1 at 127.0.0.1 not
    pairs, steps, errors = plan(nodes='node_show_four', sessions='session_p3_partial')
    assert errors == []
    logins = [' '.join(s.login.argv) for s in steps if s.login]
    assert logins == ['iscsiadm -m node -T %s -p %s -I default --login' % (DISK1, LO),
                      'iscsiadm -m node -T %s -p %s -I default --login' % (DISK10, ETH)]


def test_chap_settings_are_one_update_with_the_secret_masked():
    pairs, steps, errors = plan(targets=[DISK1], portals=[LO], node_auth=AUTH, nodes='node_show_four', sessions='session_p3_four')
    assert len(steps) == 1 and steps[0].login is None  # logged in already: settings only
    update = steps[0].actions[0]
    assert update.argv[-12:] == ['-n', 'node.session.auth.authmethod', '-v', 'CHAP',
                                 '-n', 'node.session.auth.username', '-v', 'itestuser',
                                 '-n', 'node.session.auth.password', '-v', 'itestsecret12']
    assert 'itestsecret12' not in update.shown() and '********' in update.shown()
    # the undo puts back the recorded values (None, <empty>, <empty>)
    assert steps[0].undo[0].argv[-11:] == ['node.session.auth.authmethod', '-v', 'None', '-n',
                                           'node.session.auth.username', '-v', '', '-n',
                                           'node.session.auth.password', '-v', '']


def test_recorded_chap_settings_are_not_rewritten():
    pairs, steps, errors = plan(targets=[DISK10], node_auth=AUTH, nodes='node_show_four', sessions='session_p3_four')
    assert steps == []


def test_mutual_chap_wants_the_in_fields():
    wanted = iscsi.node_settings('manual', dict(AUTH, username_in='tgt', password_in='back-secret1'))
    assert wanted['node.session.auth.username_in'] == 'tgt'
    assert [k for k in wanted if iscsi.is_secret(k)] == ['node.session.auth.password', 'node.session.auth.password_in']


def test_unknown_target_is_an_error_naming_it():
    pairs, steps, errors = plan(targets=['iqn.2026-11.test.iscsi:nosuch'], portals=[LO])
    assert errors == ['targets: iqn.2026-11.test.iscsi:nosuch is not offered at portal 127.0.0.1:3260 '
                      '(discovery found: %s, %s); check the name, the portal and the target ACL' % (DISK1, DISK10)]


def test_no_targets_means_what_discovery_found():
    pairs, steps, errors = plan(targets=[], portals=[LO])
    assert pairs == [(DISK1, LO), (DISK10, LO)]


def test_logout_one_portal_leaves_the_other():
    pairs, steps, errors = plan(state='logged_out', targets=[DISK1], portals=[ETH],
                                nodes='node_show_four', sessions='session_p3_four')
    assert errors == [] and pairs == [(DISK1, ETH)]
    assert argvs(steps) == ['iscsiadm -m node -T %s -p %s -I default --logout' % (DISK1, ETH)]


def test_logout_of_a_disk_in_use_is_refused_without_force():
    usage = {'sdc': ['/dev/sdc is mounted on /mnt/x']}
    pairs, steps, errors = plan(state='logged_out', targets=[DISK1], portals=[ETH], nodes='node_show_four',
                                sessions='session_p3_four', usage=usage)
    assert len(errors) == 1
    assert 'refusing to log out of %s at %s' % (DISK1, ETH) in errors[0]
    assert '/dev/sdc is mounted on /mnt/x' in errors[0] and 'force=true' in errors[0]
    pairs, steps, errors = plan(state='logged_out', targets=[DISK1], portals=[ETH], nodes='node_show_four',
                                sessions='session_p3_four', usage=usage, force=True)
    assert errors == [] and len(argvs(steps)) == 1


def test_absent_without_targets_removes_everything_on_the_portal():
    pairs, steps, errors = plan(state='absent', targets=[], portals=[LO], nodes='node_show_four',
                                sessions='session_p3_four')
    assert pairs == [(DISK1, LO), (DISK10, LO)]
    assert argvs(steps) == [
        'iscsiadm -m node -T %s -p %s -I default --logout' % (DISK1, LO),
        'iscsiadm -m node -T %s -p %s -I default -o delete' % (DISK1, LO),
        'iscsiadm -m node -T %s -p %s -I default --logout' % (DISK10, LO),
        'iscsiadm -m node -T %s -p %s -I default -o delete' % (DISK10, LO),
    ]


def test_absent_when_nothing_is_there_plans_nothing():
    pairs, steps, errors = plan(state='absent', nodes='node_show_none', sessions='session_p3_none')
    assert (steps, errors) == ([], [])


def test_discoverydb_plan():
    record = iscsi.parse_records(rec('discoverydb_show')[1])[0]
    auth = {'username': 'discuser', 'password': 'discsecret123', 'username_in': None, 'password_in': None}
    assert iscsi.plan_discoverydb('logged_in', [LO], 'default', auth, {LO: record}, True) == []
    actions = iscsi.plan_discoverydb('logged_in', [ETH], 'default', dict(auth, password='other-secret1'), {ETH: None}, True)
    assert [a.argv[7:] for a in actions] == [
        ['-I', 'default', '-o', 'new'],
        ['-I', 'default', '-o', 'update', '-n', 'discovery.sendtargets.auth.authmethod', '-v', 'CHAP',
         '-n', 'discovery.sendtargets.auth.username', '-v', 'discuser',
         '-n', 'discovery.sendtargets.auth.password', '-v', 'other-secret1']]
    assert 'other-secret1' not in actions[1].shown()
    removal = iscsi.plan_discoverydb('absent', [LO], 'default', None, {LO: record}, False)
    assert [' '.join(a.argv) for a in removal] == [
        'iscsiadm -m discoverydb -t sendtargets -p %s -I default -o delete' % LO]


def test_sessions_view_has_by_path_links():
    sessions = sessions_of('session_p3_four')
    links = {}
    for line in rec('by_path_four')[1].splitlines():
        if '-iscsi-' in line:
            name, device = line.split()[-3], line.split()[-1]
            links.setdefault(device.rsplit('/', 1)[1], []).append('/dev/disk/by-path/' + name)
    view = iscsi.sessions_view(sessions, [(DISK1, LO)], links)
    assert view == [{'sid': 6, 'target': DISK1, 'portal': LO, 'iface': 'default', 'state': 'LOGGED_IN',
                     'connection_state': 'LOGGED IN',
                     'devices': [{'name': 'sdb', 'path': '/dev/sdb', 'lun': 1,
                                  'by_path': ['/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-%s-lun-1' % DISK1]}]}]


# ---------------------------------------------------------------- check-mode diff and changed

def test_check_mode_after_is_the_state_the_plan_leads_to():
    """--check --diff on a fresh host: before has no sessions and no records, after has all four
    logged in with the settings the task writes (no secret), not a copy of before."""
    nodes, sessions = nodes_of('node_show_none'), sessions_of('session_p3_none')
    pairs, steps, errors = plan(startup='automatic', node_auth=AUTH)
    before = iscsi.diff_view(pairs, nodes, sessions, 'default')
    after = iscsi.predicted_view(before, steps)
    assert set(after) == set(before) == {'%s @ %s' % pair for pair in pairs}
    assert not any(v['logged_in'] or v['record'] for v in before.values())
    assert after['%s @ %s' % (DISK10, LO)] == {'logged_in': True, 'record': {
        'target': DISK10, 'portal': LO, 'tpgt': 1, 'iface': 'default', 'startup': 'automatic',
        'auth': {'method': 'CHAP', 'username': 'itestuser', 'username_in': ''}}}
    assert all(v['logged_in'] and v['record']['startup'] == 'automatic' for v in after.values())
    assert 'itestsecret12' not in repr(after)


def test_check_mode_after_of_a_converged_host_is_before():
    nodes, sessions = nodes_of('node_show_four'), sessions_of('session_p3_four')
    pairs, steps, errors = plan(nodes='node_show_four', sessions='session_p3_four')
    before = iscsi.diff_view(pairs, nodes, sessions, 'default')
    assert iscsi.predicted_view(before, steps) == before


def test_check_mode_after_of_logout_and_absent():
    nodes, sessions = nodes_of('node_show_four'), sessions_of('session_p3_four')
    for state, record in (('logged_out', True), ('absent', False)):
        pairs, steps, errors = plan(state=state, targets=[DISK1], portals=[ETH], nodes='node_show_four',
                                    sessions='session_p3_four', startup='manual' if state == 'logged_out' else None)
        before = iscsi.diff_view(pairs, nodes, sessions, 'default')
        after = iscsi.predicted_view(before, steps)
        key = '%s @ %s' % (DISK1, ETH)
        assert before[key]['logged_in'] and before[key]['record']
        assert after[key]['logged_in'] is False
        assert bool(after[key]['record']) is record
        if record:  # the record stays, with the startup the task sets
            assert after[key]['record']['startup'] == 'manual'


def test_only_actions_that_changed_something_count():
    """A login that finds a session (15), a logout or delete that finds nothing (21) and a login
    refused for CHAP (24, its record removed again) are no changes; a plain success is."""
    exists, refused_rc, gone = rec('login_already')[0], rec('login_chap_wrong')[0], rec('logout_no_session')[0]
    pairs, steps, errors = plan(targets=[DISK1], portals=[LO], startup='automatic')
    new, update, login = steps[0].actions
    assert login.noop_rcs == (iscsi.RC_SESSION_EXISTS, iscsi.RC_LOGIN_AUTH_FAILED)
    assert not iscsi.changed_by([(login, exists)])
    assert iscsi.changed_by([(login, 0)])
    refused = [(new, 0), (update, 0), (login, refused_rc), (steps[0].undo[0], 0)]
    assert not iscsi.changed_by(refused, refused=steps)
    pairs, steps, errors = plan(state='absent', targets=[DISK1], portals=[LO], nodes='node_show_four',
                                sessions='session_p3_four')
    logout, delete = steps[0].actions
    assert not iscsi.changed_by([(logout, gone), (delete, iscsi.RC_NO_OBJECTS)])
    assert iscsi.changed_by([(logout, gone), (delete, 0)])


MAPS = [dict(name='vol-a', dm='dm-1', slaves=['sdb', 'sdc'], size=1048576),
        dict(name='vol-b', dm='dm-2', slaves=['sdd', 'sde'], size=524288)]


def test_a_map_is_flushed_only_when_all_its_paths_leave_and_nothing_uses_it():
    actions, errors = iscsi.plan_map_flushes(MAPS, ['sdb', 'sdc', 'sdd'], {}, force=False)
    assert [a.argv for a in actions] == [['multipath', '-f', 'vol-a']] and errors == []


def test_a_map_in_use_is_refused_naming_the_holder_unless_forced():
    usage = {'dm-1': ['/dev/dm-1 (vol-a) is mounted on /mnt']}
    actions, errors = iscsi.plan_map_flushes(MAPS, ['sdb', 'sdc'], usage, force=False)
    assert actions == [] and len(errors) == 1
    assert 'vol-a' in errors[0] and 'mounted on /mnt' in errors[0] and 'force=true' in errors[0]
    assert iscsi.plan_map_flushes(MAPS, ['sdb', 'sdc'], usage, force=True) == ([], [])


def test_a_map_smaller_than_its_paths_is_resized():
    grown = {'sdb': 1572864, 'sdc': 1572864, 'sdd': 524288, 'sde': 524288}
    assert [a.argv for a in iscsi.plan_map_resizes(MAPS, grown)] == [['multipathd', 'resize', 'map', 'vol-a']]
    # one path not rescanned yet: its map waits for it
    assert iscsi.plan_map_resizes(MAPS, dict(grown, sdc=1048576)) == []
    assert iscsi.plan_map_resizes(MAPS, {'sdb': 1572864}) == []
