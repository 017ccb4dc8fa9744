"""The plan report, fed with the diffs tgt_target returns (made by its own view functions from tgtadm
output recorded on the lab VM) and the text diffs of file modules."""
import copy
import json
from pathlib import Path

from ansible_collections.openblock.storage.plugins.callback.plan_report import MASK, diff_lines, masked, report
from ansible_collections.openblock.storage.plugins.module_utils import tgt
from ansible_collections.openblock.storage.plugins.module_utils.plan import diff_result

TGT = Path(__file__).resolve().parents[2] / 'fixtures' / 'tgt'


def tgt_diff(live_fixture, desired_targets):
    """The diff tgt_target returns for ``desired_targets`` against the recorded tgtadm show."""
    desired, errors = tgt.validate_targets(desired_targets)
    assert errors == []
    live = tgt.parse_show((TGT / live_fixture).read_text())
    before = dict((t['iqn'], tgt.owned_view(live.get(t['iqn']))) for t in desired)
    after = dict((t['iqn'], tgt.desired_view(t)) for t in desired)
    return diff_result(before, after)


def smoke_targets():
    return json.loads((TGT / 'desired_smoke.json').read_text())['targets']


def test_new_targets_are_listed_with_what_they_export():
    lines = diff_lines(tgt_diff('show_empty.txt', smoke_targets()))
    new = ['+ iqn.2026-11.test.tgt:smoke1', '+ iqn.2026-11.test.tgt:smoke2']
    assert [line for line in lines if not line.startswith('    ')] == new
    assert lines[1:6] == ['    addresses: ["0.0.0.0/32"]', '    incoming_users: ["smokeuser"]',
                          '    initiators: ["iqn.1993-08.org.debian:01:176a8008f8b"]', lines[4],
                          '    outgoing_user: smokeout']
    assert lines[4].startswith('    luns: [{"lun": 1, "path": "/var/tmp/itest-tgt/f1.img"')


def test_a_changed_target_shows_each_field_before_and_after():
    live = tgt.parse_show((TGT / 'show_targets_luns_acl_accounts_connected.txt').read_text())
    # exp1 as it is, but a second initiator allowed
    wanted = {'iqn': 'iqn.2026-11.test.tgt:exp1', 'addresses': ['127.0.0.1'],
              'initiators': ['iqn.1993-08.org.debian:01:compute2'],
              'luns': [{'lun': 1, 'path': lun['path'], 'scsi_id': lun['scsi_id'], 'scsi_sn': lun['scsi_sn']}
                       for lun in tgt.owned_view(live['iqn.2026-11.test.tgt:exp1'])['luns']]}
    lines = diff_lines(tgt_diff('show_targets_luns_acl_accounts_connected.txt', [wanted]))
    assert lines == ['~ iqn.2026-11.test.tgt:exp1 initiators: [] -> ["iqn.1993-08.org.debian:01:compute2"]']


def test_an_unchanged_object_and_an_empty_diff_say_nothing():
    diff = tgt_diff('show_empty.txt', smoke_targets())
    assert diff_lines(diff_result(diff['after'], copy.deepcopy(diff['after']))) == []
    assert diff_lines({}) == []


def test_removed_objects_and_text_files():
    assert diff_lines({'before': {'volume-a': {'size': 1}}, 'after': {'volume-a': None}}) == ['- volume-a']
    assert diff_lines({'before': '', 'after': 'a\nb\n', 'after_header': '/etc/x.conf'}) == [
        '/etc/x.conf: new (+2 -0 lines)']
    assert diff_lines({'before': 'a\nb\n', 'after': 'a\nc\n', 'before_header': '/etc/y'}) == [
        '/etc/y: changed (+1 -1 lines)']


def test_secrets_are_masked_at_any_depth_whatever_the_module_returned():
    value = {'t': {'incoming_users': [{'user': 'u1', 'password': 'hunter2-secret'}], 'secret': 's3'}}
    assert masked(value) == {'t': {'incoming_users': [{'user': 'u1', 'password': MASK}], 'secret': MASK}}
    lines = diff_lines({'before': {}, 'after': value})
    assert 'hunter2-secret' not in '\n'.join(lines) and 's3' not in '\n'.join(lines)


def test_the_report_goes_host_by_host_and_names_the_quiet_ones():
    diff = tgt_diff('show_empty.txt', smoke_targets())
    login = {'changed': True, 'commands': ['iscsiadm -m node -T t -p p --login']}
    changes = [('storage1', 'Export each volume', 'openblock.storage.tgt_target', {'changed': True, 'diff': diff}),
               ('compute1', 'Log in', 'openblock.storage.iscsi_session', login)]
    lines = report(changes, ['storage1', 'compute1', 'compute2'], check_mode=True)
    assert lines[0] == 'PLAN: what this run would change (check mode: nothing was changed)'
    assert lines[1:3] == ['storage1: 1 change(s)', '  Export each volume [openblock.storage.tgt_target]']
    assert lines[3] == '    + iqn.2026-11.test.tgt:smoke1'
    assert lines[-4:] == [
        'compute1: 1 change(s)', '  Log in [openblock.storage.iscsi_session]',
        '    $ iscsiadm -m node -T t -p p --login', 'no change: compute2']


def test_a_changed_file_text_in_an_object_is_one_line_of_line_counts():
    """system_units diffs files as path -> text: the report says how many lines changed, on one line."""
    old = '# Ansible managed\n[Unit]\nAfter=dev-a.device dev-b.device\n'
    new = '# Ansible managed\n[Unit]\nAfter=dev-a.device\n'
    lines = diff_lines({'before': {'files': {'/etc/x.conf': old}}, 'after': {'files': {'/etc/x.conf': new}}})
    assert lines == ['~ files /etc/x.conf: +1 -1 lines']
