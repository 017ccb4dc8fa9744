"""tgt parsing, validation, conf.d rendering and planning, fed with tgtadm output recorded on the lab VM
(tgt 1.0.85, Debian 12)."""

import copy
import json
from pathlib import Path

import pytest

from ansible_collections.openblock.storage.plugins.module_utils import tgt
from ansible_collections.openblock.storage.plugins.module_utils.plan import MASK, Action, FileWrite, Runner

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'tgt'
ME = 'iqn.1993-08.org.debian:01:176a8008f8b'  # the lab image's initiator, logged in to exp1


def tgtadm(plan):
    """The plan's tgtadm commands, without the conf.d writes that follow each target's change."""
    return [a for a in plan.actions if not isinstance(a, FileWrite)]


def fixture(name):
    return (FIXTURES / name).read_text()


@pytest.fixture
def busy():
    """Three targets: exp10 (two LUNs, ACLs, accounts), exp2 (empty), exp1 (initiator connected)."""
    return tgt.parse_show(fixture('show_targets_luns_acl_accounts_connected.txt'))


def smoke_desired():
    desired, errors = tgt.validate_targets(json.loads(fixture('desired_smoke.json'))['targets'])
    assert errors == []
    return desired


def smoke_files():
    files = {}
    for name in ('conf_smoke1.conf', 'conf_smoke2.conf'):
        text = fixture(name)
        parsed = tgt.parse_conf(text)
        files[parsed['iqn']] = dict(path=tgt.conf_path(parsed['iqn']), text=text, secrets=parsed['secrets'])
    return files


# ---------------------------------------------------------------- parsing

def test_empty_show_has_no_targets():
    assert tgt.parse_show(fixture('show_empty.txt')) == {}


def test_show_parses_luns_acls_accounts_and_sessions(busy):
    assert sorted(busy) == ['iqn.2026-11.test.tgt:exp1', 'iqn.2026-11.test.tgt:exp10', 'iqn.2026-11.test.tgt:exp2']
    exp10 = busy['iqn.2026-11.test.tgt:exp10']
    assert (exp10['tid'], exp10['state']) == (1, 'ready')
    assert sorted(exp10['luns']) == [0, 1, 2]
    assert exp10['luns'][0]['type'] == 'controller' and exp10['luns'][0]['path'] is None
    assert exp10['luns'][1] == dict(lun=1, type='disk', path='/var/tmp/itest-tgt/f1.img', readonly=False,
                                    scsi_id='IET     00010001', scsi_sn='beaf11', size_text='67 MB')
    assert exp10['luns'][2]['readonly'] is True
    assert exp10['luns'][2]['scsi_id'] == '00112233445566778899aabbccddeeff'
    assert exp10['incoming_users'] == ['inuser2']
    assert exp10['outgoing_user'] == 'outuser1'
    # One "ACL information" section holds both kinds of entries.
    assert exp10['addresses'] == ['10.50.1.0/24', '0.0.0.0/32']
    assert exp10['initiators'] == [ME, 'iqn.2026-11.test.tgt:other-initiator']
    assert exp10['sessions'] == []


def test_show_parses_connected_initiator(busy):
    exp1 = busy['iqn.2026-11.test.tgt:exp1']
    assert exp1['tid'] == 3
    assert exp1['sessions'] == [dict(initiator=ME, addresses=['127.0.0.1'])]
    assert exp1['addresses'] == ['127.0.0.1']


def test_target_names_match_exactly(busy):
    # exp1 and exp10 share a prefix; each keeps its own LUNs.
    assert busy['iqn.2026-11.test.tgt:exp1']['luns'][1]['scsi_id'] == '0f1e2d3c4b5a69788796a5b4c3d2e1f0'
    assert busy['iqn.2026-11.test.tgt:exp10']['luns'][1]['scsi_id'] == 'IET     00010001'


def test_accounts_list():
    assert tgt.parse_accounts(fixture('show_accounts.txt')) == {'spareuser', 'inuser2', 'outuser1'}
    assert tgt.parse_accounts('') == set()


# ---------------------------------------------------------------- identity

def test_default_ids_depend_on_names_only():
    scsi_id, scsi_sn = tgt.default_ids('iqn.2026-11.test.tgt:a', 1)
    assert len(scsi_id) == 32 and len(scsi_sn) == 16
    assert (scsi_id, scsi_sn) == tgt.default_ids('iqn.2026-11.test.tgt:a', 1)
    assert scsi_id != tgt.default_ids('iqn.2026-11.test.tgt:a', 2)[0]
    assert scsi_id != tgt.default_ids('iqn.2026-11.test.tgt:b', 1)[0]


def test_wwid_matches_what_the_lab_initiator_read():
    # scsi_id 0f1e...e1f0 on tid 3 gave `/lib/udev/scsi_id -g -u` = 36f1e2d3c4b5a69788796a5b4c3d2e1f0.
    assert tgt.wwid_of('0f1e2d3c4b5a69788796a5b4c3d2e1f0') == '36f1e2d3c4b5a69788796a5b4c3d2e1f0'
    assert tgt.wwid_of('IET     00010001') is None


# ---------------------------------------------------------------- validation

def test_validation_collects_every_error_with_option_and_value():
    raw = [
        dict(iqn='IQN.bad name'),
        dict(iqn='iqn.2026-11.test.tgt:x', luns=[dict(lun=0, path='/dev/x'), dict(lun=1, path='rel/path'),
                                                 dict(lun=2, path='/dev/ok', scsi_id='x' * 37)],
             addresses=['10.0.0.1/24', 'nonsense'],
             incoming_users=[dict(user='u1', password='short')],
             outgoing_user=dict(user='u1', password='longenoughsecret')),
    ]
    targets, errors = tgt.validate_targets(raw)
    text = '\n'.join(errors)
    assert "targets[0].iqn='IQN.bad name'" in text
    assert 'targets[1].luns[0].lun=0' in text
    assert "targets[1].luns[1].path='rel/path'" in text
    assert 'targets[1].luns[2].scsi_id=' in text
    assert "targets[1].addresses[0]='10.0.0.1/24'" in text  # host bits set
    assert "targets[1].addresses[1]='nonsense'" in text
    assert 'targets[1].incoming_users[0].password' in text and 'shorter than 12' in text
    assert 'short' not in text.replace('shorter', '')  # the secret itself is never echoed
    assert len(errors) == 7


def test_full_length_masks_are_written_as_hosts():
    targets, errors = tgt.validate_targets([dict(iqn='iqn.2026-11.test.tgt:m', addresses=['10.0.0.5/32', 'fd00::/64'])])
    assert errors == []
    assert targets[0]['addresses'] == ['10.0.0.5', 'fd00::/64']


def test_one_user_has_one_secret_across_targets():
    raw = [dict(iqn='iqn.2026-11.test.tgt:a', incoming_users=[dict(user='u', password='a' * 12)]),
           dict(iqn='iqn.2026-11.test.tgt:b', incoming_users=[dict(user='u', password='b' * 12)])]
    assert any('another secret' in e for e in tgt.validate_targets(raw)[1])


def test_mutual_chap_secrets_must_differ():
    raw = [dict(iqn='iqn.2026-11.test.tgt:a', incoming_users=[dict(user='u', password='s' * 12)],
                outgoing_user=dict(user='o', password='s' * 12))]
    assert any('must differ' in e for e in tgt.validate_targets(raw)[1])


def test_same_backing_path_twice_is_refused():
    raw = [dict(iqn='iqn.2026-11.test.tgt:a', luns=[dict(lun=1, path='/dev/vg/lv')]),
           dict(iqn='iqn.2026-11.test.tgt:b', luns=[dict(lun=1, path='/dev/vg/lv')])]
    assert any('already exported by iqn.2026-11.test.tgt:a LUN 1' in e for e in tgt.validate_targets(raw)[1])


# ---------------------------------------------------------------- access lists and files

def test_no_acl_means_no_access():
    target = tgt.validate_targets([dict(iqn='iqn.2026-11.test.tgt:a')])[0][0]
    assert tgt.acl_addresses(target) == [tgt.NO_ACCESS]
    assert 'initiator-address 0.0.0.0/32' in tgt.render_conf(target)
    names_only = tgt.validate_targets([dict(iqn='iqn.2026-11.test.tgt:a', initiators=[ME])])[0][0]
    # tgt admits on address OR name: ALL here would admit every initiator.
    assert tgt.acl_addresses(names_only) == [tgt.NO_ACCESS]
    assert 'initiator-address 0.0.0.0/32' in tgt.render_conf(names_only)


def test_render_matches_the_file_the_module_wrote_on_the_lab():
    desired = smoke_desired()
    assert tgt.render_conf(desired[0]) == fixture('conf_smoke1.conf')
    assert tgt.render_conf(desired[1]) == fixture('conf_smoke2.conf')


def test_parse_conf_reads_our_files_only():
    parsed = tgt.parse_conf(fixture('conf_smoke1.conf'))
    assert parsed == dict(iqn='iqn.2026-11.test.tgt:smoke1',
                          secrets={'smokeuser': 'smokesecret123', 'smokeout': 'smokeoutsecret1'})
    assert tgt.parse_conf('<target iqn.2026-11.test.tgt:other>\n</target>\n') is None


# ---------------------------------------------------------------- planning

def test_converged_state_after_tgtd_restart_plans_nothing():
    live = tgt.parse_show(fixture('show_converged_after_restart.txt'))
    plan = tgt.plan_targets(smoke_desired(), live, smoke_files())
    assert plan.actions == [] and plan.writes == {} and plan.removals == [] and plan.refusals == []
    assert not plan.needs_accounts
    assert plan.changed_iqns == set()


def test_only_the_target_whose_conf_file_is_missing_counts_as_changed():
    live = tgt.parse_show(fixture('show_converged_after_restart.txt'))
    files = smoke_files()
    del files['iqn.2026-11.test.tgt:smoke2']
    plan = tgt.plan_targets(smoke_desired(), live, files)
    assert tgtadm(plan) == [] and sorted(plan.writes) == [tgt.conf_path('iqn.2026-11.test.tgt:smoke2')]
    assert plan.changed_iqns == {'iqn.2026-11.test.tgt:smoke2'}


def test_create_from_empty_uses_lowest_tid_and_sets_identity_before_acl():
    desired = smoke_desired()
    plan = tgt.plan_targets(desired, {}, {}, accounts=set())
    argvs = [' '.join(a.argv) for a in tgtadm(plan)]
    assert argvs[0].endswith('--mode account --op new --user smokeout --password smokeoutsecret1')
    assert '--op new --tid 1 -T iqn.2026-11.test.tgt:smoke1' in argvs[2]
    first_bind = next(i for i, a in enumerate(argvs) if '--op bind' in a and '--mode target' in a)
    last_identity = max(i for i, a in enumerate(argvs) if 'scsi_id=' in a)
    assert last_identity < first_bind
    assert any('--op new --tid 2 -T iqn.2026-11.test.tgt:smoke2' in a for a in argvs)
    assert any(a.endswith('--tid 2 -I 0.0.0.0/32') for a in argvs)
    assert not any(' -I ALL' in a and '--tid 2' in a for a in argvs)
    assert sorted(plan.writes) == [tgt.conf_path('iqn.2026-11.test.tgt:smoke1'), tgt.conf_path('iqn.2026-11.test.tgt:smoke2')]
    assert plan.changed_iqns == {'iqn.2026-11.test.tgt:smoke1', 'iqn.2026-11.test.tgt:smoke2'}


def test_each_conf_file_is_written_0600_right_after_its_targets_live_change():
    plan = tgt.plan_targets(smoke_desired(), {}, {}, accounts=set())
    shown = [a.shown() for a in plan.actions]
    for iqn, tid in (('iqn.2026-11.test.tgt:smoke1', 1), ('iqn.2026-11.test.tgt:smoke2', 2)):
        write = shown.index('write ' + tgt.conf_path(iqn))
        last_live = max(i for i, a in enumerate(shown) if '--tid %d ' % tid in a + ' ')
        assert write == last_live + 1, shown
        assert plan.actions[write].mode == 0o600 and plan.actions[write].text == plan.writes[tgt.conf_path(iqn)]
    # a removed target's file goes right after the target
    live = tgt.parse_show(fixture('show_converged_after_restart.txt'))
    removal = tgt.plan_targets([dict(smoke_desired()[1], state='absent')], live, smoke_files())
    assert [a.shown().split(' --lld iscsi ')[-1] for a in removal.actions] == [
        '--mode target --op delete --tid 6', 'remove ' + tgt.conf_path('iqn.2026-11.test.tgt:smoke2')]  # tid as tgtd gave it


def test_secrets_are_masked_in_shown_commands():
    plan = tgt.plan_targets(smoke_desired(), {}, {}, accounts=set())
    shown = '\n'.join(a.shown() for a in plan.actions)  # the conf.d writes show their path only
    assert 'smokesecret123' not in shown and 'smokeoutsecret1' not in shown
    assert shown.count(MASK) == 2


def test_missing_account_list_is_asked_for():
    plan = tgt.plan_targets(smoke_desired(), {}, {})
    assert plan.needs_accounts


def test_lowest_free_tid_fills_gaps(busy):
    del busy['iqn.2026-11.test.tgt:exp2']  # frees tid 2
    desired = tgt.validate_targets([dict(iqn='iqn.2026-11.test.tgt:new')])[0]
    plan = tgt.plan_targets(desired, busy, {}, accounts=set())
    assert tgtadm(plan)[0].argv[-4:] == ['--tid', '2', '-T', 'iqn.2026-11.test.tgt:new']


def test_removing_a_connected_target_is_refused_with_initiator_names(busy):
    desired = tgt.validate_targets([dict(iqn='iqn.2026-11.test.tgt:exp1', state='absent')])[0]
    plan = tgt.plan_targets(desired, busy, {})
    assert len(plan.refusals) == 1
    assert ME in plan.refusals[0] and '127.0.0.1' in plan.refusals[0] and 'force' in plan.refusals[0]
    forced = tgt.plan_targets(desired, busy, {}, force=True)
    assert forced.refusals == []
    assert tgtadm(forced)[0].argv[-3:] == ['--tid', '3', '--force']


def test_changing_a_lun_of_a_connected_target_is_refused(busy):
    desired = tgt.validate_targets([dict(iqn='iqn.2026-11.test.tgt:exp1', addresses=['127.0.0.1'],
                                         luns=[dict(lun=1, path='/var/tmp/itest-tgt/f2.img')])])[0]
    plan = tgt.plan_targets(desired, busy, {})
    assert len(plan.refusals) == 1 and 'changing LUN 1' in plan.refusals[0] and ME in plan.refusals[0]


def test_adding_a_lun_to_a_connected_target_is_allowed(busy):
    desired = tgt.validate_targets([dict(iqn='iqn.2026-11.test.tgt:exp1', addresses=['127.0.0.1'], luns=[
        dict(lun=1, path='/var/tmp/itest-tgt/f1.img', scsi_id='0f1e2d3c4b5a69788796a5b4c3d2e1f0',
             scsi_sn='abcdef0123456789abcd'),
        dict(lun=2, path='/var/tmp/itest-tgt/f3.img')])])[0]
    plan = tgt.plan_targets(desired, busy, {}, accounts=set())
    assert plan.refusals == []
    assert [a.argv[3:7] for a in tgtadm(plan)] == [['--mode', 'logicalunit', '--op', 'new'],
                                                   ['--mode', 'logicalunit', '--op', 'update']]
    assert plan.changed_iqns == {'iqn.2026-11.test.tgt:exp1'}


def test_reconcile_unbinds_before_binding_and_replaces_unknown_secrets(busy):
    desired = tgt.validate_targets([dict(
        iqn='iqn.2026-11.test.tgt:exp10',
        luns=[dict(lun=1, path='/var/tmp/itest-tgt/f1.img')],
        addresses=['10.50.1.0/24'], initiators=[ME],
        incoming_users=[dict(user='inuser2', password='newsecret1234')])])[0]
    plan = tgt.plan_targets(desired, busy, {}, accounts={'inuser2', 'outuser1', 'spareuser'})
    argvs = [' '.join(a.argv[3:]) for a in tgtadm(plan)]
    assert argvs == [
        # the secret of inuser2 is not in any of our files: set it again (delete unbinds it), with
        # the target admitting no new login from before the delete until after the bind
        '--mode target --op unbind --tid 1 -I 10.50.1.0/24',
        '--mode target --op unbind --tid 1 -I 0.0.0.0/32',
        '--mode target --op unbind --tid 1 -Q %s' % ME,
        '--mode target --op unbind --tid 1 -Q iqn.2026-11.test.tgt:other-initiator',
        '--mode account --op delete --user inuser2',
        '--mode account --op new --user inuser2 --password newsecret1234',
        '--mode account --op unbind --tid 1 --user outuser1 --outgoing',
        '--mode logicalunit --op delete --tid 1 --lun 2',
        '--mode logicalunit --op update --tid 1 --lun 1 --params scsi_id=%s,scsi_sn=%s,readonly=0'
        % tgt.default_ids('iqn.2026-11.test.tgt:exp10', 1),
        '--mode account --op bind --tid 1 --user inuser2',
        '--mode target --op bind --tid 1 -I 10.50.1.0/24',
        '--mode target --op bind --tid 1 -Q %s' % ME,
    ]


def test_exclusive_removes_only_managed_targets(busy):
    files = {'iqn.2026-11.test.tgt:exp2': dict(path=tgt.conf_path('iqn.2026-11.test.tgt:exp2'), text='', secrets={})}
    plan = tgt.plan_targets([], busy, files, exclusive=True)
    assert [a.argv[3:] for a in tgtadm(plan)] == [['--mode', 'target', '--op', 'delete', '--tid', '2']]
    assert plan.removals == [tgt.conf_path('iqn.2026-11.test.tgt:exp2')]


def test_persist_false_removes_the_file_of_a_listed_target():
    live = tgt.parse_show(fixture('show_converged_after_restart.txt'))
    plan = tgt.plan_targets(smoke_desired(), live, smoke_files(), persist=False)
    assert tgtadm(plan) == [] and plan.writes == {}
    assert sorted(plan.removals) == sorted(f['path'] for f in smoke_files().values())
    # No command runs, but each file goes: both targets count as changed.
    assert plan.changed_iqns == {'iqn.2026-11.test.tgt:smoke1', 'iqn.2026-11.test.tgt:smoke2'}


def test_removed_targets_accounts_are_deleted_when_unused():
    live = tgt.parse_show(fixture('show_converged_after_restart.txt'))
    desired = [dict(t, state='absent') for t in smoke_desired()]
    plan = tgt.plan_targets(desired, live, smoke_files())
    argvs = [' '.join(a.argv[3:]) for a in tgtadm(plan)]
    tids = [live['iqn.2026-11.test.tgt:smoke%d' % n]['tid'] for n in (1, 2)]
    assert tids == [5, 6]  # as recorded on storage1, beside the site's four targets
    assert argvs == ['--mode target --op delete --tid 5', '--mode target --op delete --tid 6',
                     '--mode account --op delete --user smokeout', '--mode account --op delete --user smokeuser']


# ---------------------------------------------------------------- changing a CHAP secret

SHARED1, SHARED2 = 'iqn.2026-11.test.tgt:shared1', 'iqn.2026-11.test.tgt:shared2'
LAB1 = 'iqn.1993-08.org.debian:01:656bb0b94b1'  # the initiator logged in to shared1 in that recording


@pytest.fixture
def shared():
    """chapshared is bound to shared1 (listed below, lab1 logged in with CHAP) and to shared2 (not
    listed, also answering mutual CHAP as chapout)."""
    return tgt.parse_show(fixture('show_chap_shared_connected.txt'))


def shared1(password='newsharedsecret1'):
    return tgt.validate_targets([dict(iqn=SHARED1, luns=[dict(lun=1, path='/var/tmp/fx/s1.img')],
                                      addresses=['127.0.0.1'], initiators=[LAB1],
                                      incoming_users=[dict(user='chapshared', password=password)])])[0]


def test_secret_change_blocks_every_target_of_the_account_from_before_the_delete_to_after_the_bind(shared):
    accounts = tgt.parse_accounts(fixture('accounts_chap_shared.txt'))
    plan = tgt.plan_targets(shared1(), shared, {}, accounts=accounts)
    argvs = [' '.join(a.argv[3:]) for a in tgtadm(plan)]
    assert argvs == [
        # block: both targets that require chapshared stop admitting new logins ...
        '--mode target --op unbind --tid 1 -I 127.0.0.1',
        '--mode target --op unbind --tid 1 -Q %s' % LAB1,
        '--mode target --op unbind --tid 2 -I 10.50.1.0/24',
        '--mode target --op unbind --tid 2 -I 0.0.0.0/32',
        # ... before the account (and with it CHAP on both) goes
        '--mode account --op delete --user chapshared',
        '--mode account --op new --user chapshared --password newsharedsecret1',
        # shared2, not listed: its account and then its access list come back as they were
        '--mode account --op bind --tid 2 --user chapshared',
        '--mode target --op bind --tid 2 -I 10.50.1.0/24',
        '--mode target --op bind --tid 2 -I 0.0.0.0/32',
        # shared1: account first, access list last
        '--mode account --op bind --tid 1 --user chapshared',
        '--mode target --op bind --tid 1 -I 127.0.0.1',
        '--mode target --op bind --tid 1 -Q %s' % LAB1,
    ]
    # Changing access lists cuts no session (seen on the lab): no force needed for lab1's session.
    assert shared[SHARED1]['sessions'] and plan.refusals == []
    assert plan.rekeyed == {'chapshared'} and sorted(plan.blocked) == [SHARED1, SHARED2]
    # Between its block and its unblock, no target admits a login without the new secret bound.
    for iqn, tid in ((SHARED1, '1'), (SHARED2, '2')):
        acl = [i for i, a in enumerate(argvs) if '--mode target' in a and '--tid %s ' % tid in a]
        bind = argvs.index('--mode account --op bind --tid %s --user chapshared' % tid)
        delete = argvs.index('--mode account --op delete --user chapshared')
        assert max(i for i in acl if 'unbind' in argvs[i]) < delete < bind < min(i for i in acl if ' bind' in argvs[i])


def test_a_new_account_or_a_known_secret_blocks_nothing(shared):
    files = {SHARED1: dict(path=tgt.conf_path(SHARED1), text='', secrets={'chapshared': 'newsharedsecret1'})}
    plan = tgt.plan_targets(shared1(), shared, files)
    assert tgtadm(plan) == [] and plan.blocked == {} and plan.rekeyed == set()
    new_user = tgt.validate_targets([dict(iqn=SHARED1, luns=[dict(lun=1, path='/var/tmp/fx/s1.img')],
                                          addresses=['127.0.0.1'], initiators=[LAB1],
                                          incoming_users=[dict(user='chapnew', password='chapnewsecret1')])])[0]
    plan = tgt.plan_targets(new_user, shared, {}, accounts={'chapout', 'chapshared'})
    assert not any('unbind --tid 1 -I' in ' '.join(a.argv) for a in tgtadm(plan)) and plan.blocked == {}


class ScriptedModule(object):
    """Every command succeeds but those containing ``fail_on``, which fail as tgtadm does."""
    check_mode = False

    def __init__(self, fail_on):
        self.fail_on = fail_on
        self.ran = []
        self.failed = None

    def run_command(self, argv, environ_update=None):
        self.ran.append(argv)
        if ' '.join(self.fail_on) in ' '.join(argv):
            return 22, '', 'tgtadm: this account already exists\n'
        return 0, '', ''

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)


def apply_failing(plan, fail_on):
    module = ScriptedModule(fail_on)
    with pytest.raises(SystemExit):
        Runner(module).apply(tgtadm(plan),  # no conf.d write here
                             explain=lambda action, rc, output: plan.blocked_advice(action))
    return module.failed


def test_a_failure_while_blocked_says_so_and_how_to_recover(shared):
    accounts = tgt.parse_accounts(fixture('accounts_chap_shared.txt'))
    plan = tgt.plan_targets(shared1(), shared, {}, accounts=accounts)
    failed = apply_failing(plan, ['--mode', 'account', '--op', 'new'])
    msg = failed['msg']
    assert 'could not create CHAP user chapshared' in msg
    assert 'new logins to %s, %s are refused' % (SHARED1, SHARED2) in msg
    assert 're-run this task to finish the change and admit them again (%s)' % SHARED1 in msg
    # shared2 is not listed: no later run knows its entries, so the error names the commands.
    assert ('%s is not listed in this task' % SHARED2) in msg and (
        'tgtadm --lld iscsi --mode account --op bind --tid 2 --user chapshared && '
        'tgtadm --lld iscsi --mode target --op bind --tid 2 -I 10.50.1.0/24 && '
        'tgtadm --lld iscsi --mode target --op bind --tid 2 -I 0.0.0.0/32') in msg
    assert 'newsharedsecret1' not in json.dumps(failed)
    # Before the first block took effect, and after the last unblock, nothing is blocked.
    assert 'refused' not in apply_failing(plan, ['--op', 'unbind', '--tid', '1', '-I'])['msg']
    cleanup = tgt.plan_targets(shared1(), shared, {}, accounts=accounts)
    cleanup.actions.append(Action(tgt.TGTADM + ['--mode', 'account', '--op', 'delete', '--user', 'gone'], 'later'))
    assert 'refused' not in apply_failing(cleanup, ['--user', 'gone'])['msg']


def test_the_rerun_after_a_failure_while_blocked_converges_and_admits_again(shared):
    # The state the failed run above left: both access lists empty, chapshared deleted (which
    # unbound it everywhere), the account list without it.
    for iqn in (SHARED1, SHARED2):
        shared[iqn]['addresses'], shared[iqn]['initiators'], shared[iqn]['incoming_users'] = [], [], []
    plan = tgt.plan_targets(shared1(), shared, {}, accounts={'chapout'})
    assert [' '.join(a.argv[3:]) for a in tgtadm(plan)] == [
        '--mode account --op new --user chapshared --password newsharedsecret1',
        '--mode account --op bind --tid 1 --user chapshared',
        '--mode target --op bind --tid 1 -I 127.0.0.1',
        '--mode target --op bind --tid 1 -Q %s' % LAB1,
    ]


# ---------------------------------------------------------------- the record of secrets set

def salts():
    counter = iter(range(1000))
    return lambda: '%032x' % next(counter)


def test_persist_false_no_op_is_a_no_op_from_the_record():
    """With persist: false no conf.d file knows the secrets: the record of the hashes does."""
    live = tgt.parse_show(fixture('show_converged_after_restart.txt'))
    desired = smoke_desired()
    first = tgt.plan_targets(desired, live, {}, persist=False, records=None)
    # Nothing recorded yet and no file: unknown secrets are set again (fail closed).
    assert first.rekeyed == {'smokeuser', 'smokeout'}
    record = tgt.records_after(None, desired, first, salts())
    again = tgt.plan_targets(desired, live, {}, persist=False, records=record)
    assert again.actions == [] and again.writes == {} and again.removals == [] and again.changed_iqns == set()
    assert again.recorded == {'smokeuser', 'smokeout'}
    # ... and keeps the record as it is.
    assert tgt.records_after(record, desired, again, salts()) == record
    # A new secret is seen as new.
    changed = [dict(t) for t in desired]
    changed[0] = dict(changed[0], incoming_users=[dict(user='smokeuser', password='anothersecret12')])
    assert 'smokeuser' in tgt.plan_targets(changed, live, {}, persist=False, records=record).rekeyed


def test_the_record_holds_salted_hashes_only_and_fails_closed():
    live = tgt.parse_show(fixture('show_converged_after_restart.txt'))
    desired = smoke_desired()
    record = tgt.records_after(None, desired, tgt.plan_targets(desired, live, {}, records=None), salts())
    text = tgt.record_text('829:1796040344000000000', record)
    assert 'smokesecret123' not in text and 'smokeoutsecret1' not in text
    assert set(record['smokeuser']) == {'salt', 'rounds', 'hash'}
    assert record['smokeuser']['hash'] != tgt.secret_entry('smokesecret123', '%032x' % 99)['hash']
    # Another tgtd (restarted: a new control socket) or a damaged file: no record.
    assert tgt.known_record(text, '829:1796040344000000000') == record
    assert tgt.known_record(text, '687:1796039935000000000') is None
    assert tgt.known_record(text[:-9], '829:1796040344000000000') is None
    # An entry voided before a run that then failed means unknown, even with the old conf.d secret.
    plan = tgt.plan_targets(desired, live, smoke_files(), records=record)
    assert plan.actions == []
    plan.rekeyed = {'smokeuser'}
    voided = tgt.records_voided(record, plan)
    assert voided['smokeuser'] is None
    assert 'smokeuser' in tgt.plan_targets(desired, live, smoke_files(), records=voided).rekeyed
    assert not tgt.secret_matches({'salt': 'zz', 'rounds': 1, 'hash': ''}, 'smokesecret123')


# ---------------------------------------------------------------- failures through the runner

class FakeModule(object):
    check_mode = False

    def __init__(self, rc, out, err):
        self.reply = (rc, out, err)
        self.failed = None

    def run_command(self, argv, environ_update=None):
        return self.reply

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)


@pytest.mark.parametrize('name', ['err_account_exists.txt', 'err_target_in_use.txt', 'err_outgoing_exists.txt'])
def test_tgtadm_errors_are_reported_with_the_action_and_no_secret(name):
    message, exit_line = fixture(name).splitlines()
    module = FakeModule(int(exit_line.split()[1]), '', message + '\n')
    secret = 'smokesecret123'
    action = Action(tgt.TGTADM + ['--mode', 'account', '--op', 'new', '--user', 'u', '--password', secret],
                    'create CHAP user u', secrets=[secret])
    with pytest.raises(SystemExit):
        Runner(module).apply([action])
    assert message in module.failed['msg'] and 'exited 22' in module.failed['msg']
    assert secret not in json.dumps(module.failed)


def test_plan_does_not_mutate_its_input(busy):
    snapshot = copy.deepcopy(busy)
    desired = tgt.validate_targets([dict(iqn='iqn.2026-11.test.tgt:exp10', state='absent')])[0]
    tgt.plan_targets(desired, busy, {})
    assert busy == snapshot


# ---------------------------------------------------------------- I/O threads per LUN
# tgtd_cmdline.default: /proc/PID/cmdline of Debian's tgt.service (tgtd -f); tgtd_cmdline.iothreads4:
# of a tgtd started with --nr_iothreads 4, as the storage_node role's drop-in starts it.

def test_the_running_tgtd_threads_are_read_from_its_command_line():
    assert tgt.iothreads_running(fixture('tgtd_cmdline.default')) is None
    assert tgt.iothreads_running(fixture('tgtd_cmdline.iothreads4')) == 4
    assert tgt.iothreads_running('/usr/sbin/tgtd\0-f\0-t\0008\0') == 8
    with pytest.raises(ValueError, match='not a tgtd command line'):
        tgt.iothreads_running('/usr/sbin/sshd\0-D\0')
    with pytest.raises(ValueError):
        tgt.iothreads_running('')


def test_new_threads_restart_an_idle_tgtd_only(busy):
    default = tgt.iothreads_running(fixture('tgtd_cmdline.default'))
    assert tgt.iothreads_step(None, default, {}) == (False, None)
    assert tgt.iothreads_step(4, 4, busy) == (False, None)
    assert tgt.iothreads_step(4, default, {}) == (True, None)
    restart, warning = tgt.iothreads_step(4, default, busy)
    assert not restart
    assert warning.startswith('tgtd runs with its default of 16 I/O threads per LUN and exports 3 target(s), '
                              'so it was not restarted') and 'iothreads=4 applies at its next restart' in warning


@pytest.mark.parametrize('value, ok', [(None, True), (1, True), (128, True), (0, False), (129, False), (True, False)])
def test_iothreads_range(value, ok):
    error = tgt.iothreads_error(value)
    assert (error is None) == ok
    if not ok:
        assert error.startswith('iothreads=%r: give 1 to 128' % value)


def exp1_lun1(**lun):
    """exp1 as the busy fixture has it (LUN 1, 67 MB, one initiator connected), with ``lun`` changed."""
    return tgt.validate_targets([dict(iqn='iqn.2026-11.test.tgt:exp1', addresses=['127.0.0.1'], luns=[dict(
        dict(lun=1, path='/var/tmp/itest-tgt/f1.img', scsi_id='0f1e2d3c4b5a69788796a5b4c3d2e1f0',
             scsi_sn='abcdef0123456789abcd'), **lun)])])[0]


def with_backing_size(desired, size):
    for lun in desired[0]['luns']:
        lun['size'] = size
    return desired


def test_the_size_tgt_shows_matches_its_backing_device(busy):
    """The fixture's LUN is a 64 MiB file, which tgtadm showed as 67 MB: no resize, nor for an unknown size."""
    for size in (64 << 20, None):
        plan = tgt.plan_targets(with_backing_size(exp1_lun1(), size), busy, {}, accounts=set())
        assert plan.refusals == [] and tgtadm(plan) == []


def test_a_grown_lun_is_added_again_with_its_identity_only_when_allowed(busy):
    desired = with_backing_size(exp1_lun1(), 128 << 20)
    refused = tgt.plan_targets(desired, busy, {}, accounts=set())
    assert len(refused.refusals) == 1
    assert 'grew from 67 to 134 MB' in refused.refusals[0] and ME in refused.refusals[0]
    assert 'resize_in_use' in refused.refusals[0]
    plan = tgt.plan_targets(desired, busy, {}, accounts=set(), resize_in_use=True)
    assert plan.refusals == []
    argvs = [' '.join(a.argv[3:]) for a in tgtadm(plan)]
    assert argvs == ['--mode logicalunit --op delete --tid 3 --lun 1',
                     '--mode logicalunit --op new --tid 3 --lun 1 -b /var/tmp/itest-tgt/f1.img',
                     '--mode logicalunit --op update --tid 3 --lun 1 --params '
                     'scsi_id=0f1e2d3c4b5a69788796a5b4c3d2e1f0,scsi_sn=abcdef0123456789abcd,readonly=0']
    assert tgtadm(plan)[0].retry_while[0] in fixture('err_lun_in_use.txt')
    assert plan.changed_iqns == {'iqn.2026-11.test.tgt:exp1'}


def test_a_declared_lun_size_is_read_as_a_size():
    desired, errors = tgt.validate_targets([dict(iqn='iqn.2026-11.test.tgt:a', luns=[dict(lun=1, path='/dev/vg/a',
                                                                                          size='ten')])])
    assert len(errors) == 1 and "targets[0].luns[0].size" in errors[0] and "'ten'" in errors[0]
    desired = tgt.validate_targets([dict(iqn='iqn.2026-11.test.tgt:a', luns=[dict(lun=1, path='/dev/vg/a',
                                                                                  size='384M')])])[0]
    assert desired[0]['luns'][0]['declared_size'] == 384 << 20


def test_check_mode_predicts_removing_a_connected_target_as_after_the_logouts(busy):
    desired = tgt.validate_targets([dict(iqn='iqn.2026-11.test.tgt:exp1', state='absent')])[0]
    plan = tgt.plan_targets(desired, busy, {}, expect_logouts=True)
    assert plan.refusals == [] and len(plan.warnings) == 1 and ME in plan.warnings[0]
    assert tgtadm(plan)[0].argv[-2:] == ['--tid', '3']  # no --force: nobody is connected by then


def test_a_re_imaged_host_s_new_name_replaces_its_old_one_in_the_acl(busy):
    """The ACL follows the initiator names the role publishes: a host re-imaged with a new name is
    admitted under it, and its old name (here ME) loses access; the other host's name stays."""
    new = 'iqn.1993-08.org.debian:01:re-imaged'
    exp10 = busy['iqn.2026-11.test.tgt:exp10']
    desired = tgt.validate_targets([dict(
        iqn='iqn.2026-11.test.tgt:exp10', addresses=['10.50.1.0/24'],
        initiators=['iqn.2026-11.test.tgt:other-initiator', new],
        luns=[dict(lun=n, path=lun['path'], readonly=lun['readonly'], scsi_id=lun['scsi_id'], scsi_sn=lun['scsi_sn'])
              for n, lun in sorted(exp10['luns'].items()) if n],
        incoming_users=[dict(user='inuser2', password='newsecret1234')])])[0]
    files = {'iqn.2026-11.test.tgt:exp10': dict(path='x', text='', secrets={'inuser2': 'newsecret1234'})}
    plan = tgt.plan_targets(desired, busy, files, accounts={'inuser2', 'outuser1', 'spareuser'}, persist=False)
    argvs = [' '.join(a.argv[3:]) for a in tgtadm(plan)]
    assert argvs == ['--mode target --op unbind --tid 1 -I 0.0.0.0/32',
                     '--mode target --op unbind --tid 1 -Q %s' % ME,
                     '--mode account --op unbind --tid 1 --user outuser1 --outgoing',
                     '--mode target --op bind --tid 1 -Q %s' % new]
