"""iscsi_initiator's planner on the files Debian's open-iscsi installs (recorded from the lab image)."""

from pathlib import Path

from ansible_collections.openblock.storage.plugins.module_utils import initiator
from ansible_collections.openblock.storage.plugins.module_utils.plan import FileWrite

FIXTURES = Path(__file__).resolve().parents[3] / 'unit' / 'fixtures' / 'initiator'
CONF = (FIXTURES / 'iscsid.conf.bookworm').read_text()
NAME = (FIXTURES / 'initiatorname.iscsi.bookworm').read_text()
CLONED = 'iqn.1993-08.org.debian:01:656bb0b94b1'
MULTIPATH = {'node.startup': 'automatic', 'node.session.timeo.replacement_timeout': 5,
             'node.conn[0].timeo.noop_out_interval': 5, 'node.conn[0].timeo.noop_out_timeout': 5,
             'node.session.initial_login_retry_max': 8}


def test_the_recorded_name_is_read():
    assert initiator.parse_name(NAME) == CLONED


def test_settings_edit_only_their_lines():
    new = initiator.plan_settings(CONF, dict((k, str(v)) for k, v in MULTIPATH.items()))
    old_lines, new_lines = CONF.splitlines(), new.splitlines()
    assert len(old_lines) == len(new_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines) if a != b]
    assert changed == [('node.startup = manual', 'node.startup = automatic'),
                       ('node.session.timeo.replacement_timeout = 120', 'node.session.timeo.replacement_timeout = 5')]
    # the commented example of node.startup stays as it is
    assert '# node.startup = automatic' in new_lines


def test_a_key_without_a_line_goes_after_its_example_or_at_the_end():
    new = initiator.plan_settings('# node.session.cmds_max = 128\nother = 1\n',
                                  {'node.session.cmds_max': '256', 'discovery.sendtargets.use_discoveryd': 'No'})
    assert new == ('# node.session.cmds_max = 128\nnode.session.cmds_max = 256\nother = 1\n'
                   'discovery.sendtargets.use_discoveryd = No\n')


def test_a_converged_host_plans_nothing():
    converged = initiator.plan_settings(CONF, dict((k, str(v)) for k, v in MULTIPATH.items()))
    actions, before, after, reason = initiator.plan(NAME, converged, MULTIPATH, {})
    assert actions == [] and reason is None and before == after
    assert after['settings']['node.startup'] == 'automatic'


def test_a_name_another_host_holds_is_replaced_and_iscsid_restarted_once():
    actions, before, after, reason = initiator.plan(NAME, CONF, MULTIPATH, {CLONED: 'compute1'},
                                                    new_name='iqn.1993-08.org.debian:01:0123456789ab')
    assert 'also held by compute1' in reason
    assert before['name'] == CLONED and after['name'] == 'iqn.1993-08.org.debian:01:0123456789ab'
    writes = [a for a in actions if isinstance(a, FileWrite)]
    assert [w.path for w in writes] == [initiator.NAME_FILE, initiator.ISCSID_CONF]
    assert all(w.mode == 0o600 for w in writes)
    assert 'InitiatorName=iqn.1993-08.org.debian:01:0123456789ab\n' in writes[0].text
    assert [a.argv for a in actions if not isinstance(a, FileWrite)] == [['systemctl', 'try-restart', 'iscsid.service']]


def test_placeholders_and_missing_files_are_replaced():
    assert 'not a valid' in initiator.name_reason('GenerateName=yes', {})
    assert initiator.name_reason(initiator.parse_name('## only comments\n'), {}).endswith('names no InitiatorName')
    assert initiator.name_reason(initiator.parse_name(None), {}).startswith('there is no')
    assert initiator.name_reason(CLONED, {}) is None


def test_bad_input_names_the_option_and_value():
    errors = initiator.spec_errors(dict(name='IQN.bad name', name_prefix='iqn.1993-08.org.debian:01',
                                        settings={'node startup': 'x', 'node.x': 'a\nb'}))
    assert errors[0].startswith("name='IQN.bad name'")
    assert "settings: 'node startup' is not an iscsid.conf key" in errors[1]
    assert errors[2].startswith("settings.node.x='a\\nb'")
    assert initiator.spec_errors(dict(name=None, name_prefix='debian', settings={}))[0].startswith("name_prefix='debian'")
