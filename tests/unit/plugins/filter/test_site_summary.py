"""The site summary filter, fed with module results made by the modules' own view functions from
outputs recorded in the lab (lvs, tgtadm show, iscsiadm -m session -P 3, multipathd show maps json)."""
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.openblock.storage.plugins.filter.site_summary import site_summary
from ansible_collections.openblock.storage.plugins.module_utils import iscsi, multipath, tgt
from ansible_collections.openblock.storage.plugins.module_utils.lvm import parse_report, thin_facts

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures'
GROUPS = {'storage_nodes': ['storage1'], 'compute_nodes': ['compute1', 'compute2']}


def recorded(kind, name):
    return (FIXTURES / kind / name).read_text()


def module_results():
    """hostvars as a site run leaves them: storage1 and compute1 converged, compute2 attached to nothing."""
    pool = thin_facts('itest-lvm-a', parse_report(recorded('lvm', 'lvs_pool_volumes.json'), 'lv'), 'pool')['pool']
    live = tgt.parse_show(recorded('tgt', 'show_targets_luns_acl_accounts_connected.txt'))
    targets = [tgt.target_view(live[iqn]) for iqn in sorted(live)]
    sessions = iscsi.parse_session_detail(recorded('iscsi', 'session_p3_four.stdout'))
    pairs = [(s['target'], s['portal']) for s in sessions]
    maps = multipath.parse_maps(recorded('multipath', 'show-maps.bookworm.json'))
    return {
        'storage1': {'storage_node_pool_result': {'changed': False, 'pool': pool},
                     'storage_node_export': {'changed': False, 'targets': targets}},
        'compute1': {'compute_initiator_sessions': {'sessions': iscsi.sessions_view(sessions, pairs, {})},
                     'multipath_config': {'maps': maps}},
        'compute2': {'compute_initiator_sessions': {'skipped': True}, 'multipath_config': {'maps': {}}},
    }, pool, targets, sessions, maps


def test_every_pool_target_session_and_map_appears_once():
    hostvars, pool, targets, sessions, maps = module_results()
    lines = site_summary(hostvars, GROUPS)
    text = '\n'.join(lines)
    assert lines[0] == 'storage1 (storage node)'
    assert lines[1].startswith('  pool itest-lvm-a/pool: ') and ', data %.1f%%' % pool['data_percent'] in lines[1]
    assert targets and all(text.count('  target %s (tid %s)' % (t['iqn'], t['tid'])) == 1 for t in targets)
    assert sum(len(t['luns']) for t in targets) == sum(line.startswith('    lun ') for line in lines)
    for target in targets:
        for connected in target['connected']:
            assert connected['initiator'] in text
    assert sessions and all('  session %s @ %s: LOGGED_IN' % (s['target'], s['portal']) in text for s in sessions)
    assert maps and all(text.count('  map %s (%s, wwid %s): ' % (name, m['dm'], m['wwid'])) == 1
                        for name, m in maps.items())
    assert ' ready/active' in text
    # compute2: its login task was skipped (no volume attached), its multipath holds no map
    assert text.split('compute2 (compute node)\n', 1)[1] == '  sessions: no target attached\n  multipath maps: none'


def test_the_summary_carries_chap_user_names_but_no_secret():
    hostvars = module_results()[0]
    text = '\n'.join(site_summary(hostvars, GROUPS))
    accounts = [a for t in hostvars['storage1']['storage_node_export']['targets']
                for a in (t['accounts'].get('incoming') or [])]
    assert accounts and 'CHAP users: ' + accounts[0] in text
    assert 'password' not in text.lower() and '********' not in text


def test_a_host_whose_role_did_not_run_says_so():
    lines = site_summary({'storage1': {}, 'compute1': {}}, {'storage_nodes': ['storage1'], 'compute_nodes': ['compute1']})
    assert lines == ['storage1 (storage node)', '  targets: not exported in this run',
                     'compute1 (compute node)', '  sessions: no target attached',
                     '  multipath: not configured in this run']


def test_bad_arguments_name_the_call():
    with pytest.raises(AnsibleFilterError, match=r'hostvars \| openblock.storage.site_summary\(groups\)'):
        site_summary({}, ['storage1'])
