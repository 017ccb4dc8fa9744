"""multipath_config's parsers and planner, fed with output recorded in the lab (Debian 12, multipath-tools
0.9.4): one tgt LUN logged in through 127.0.0.1, its map formed under an alias with find_multipaths strict.
See tests/unit/fixtures/multipath/README for how each file was recorded."""

from pathlib import Path

import pytest

from ansible_collections.openblock.storage.plugins.module_utils import multipath as mp
from ansible_collections.openblock.storage.plugins.module_utils.plan import FileWrite
from ansible_collections.openblock.storage.plugins.module_utils.system_units import parse_show

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'multipath'
WWID = (FIXTURES / 'scsi_id.bookworm').read_text().strip()
PARAMS = dict(aliases=[dict(alias='itest-mpath', iqn='iqn.2026-11.test.mpath:disk1')],
              iqn_prefix='iqn.2010-10.org.openstack:', find_multipaths='strict',
              blacklist_devnodes=['^vd[a-z]+', '^(ram|zram|raw|loop|fd|md|dm-|sr|scd|st)[0-9]*'],
              tgt_device=dict(path_grouping_policy='multibus', path_selector='round-robin 0', path_checker='tur',
                              failback='immediate', no_path_retry=60),
              kernel_modules=['dm_multipath', 'dm_round_robin'], dropin='/etc/multipath/conf.d/openblock.conf')
RUNNING = dict(UnitFileState='enabled', ActiveState='active')
LOAD = 'dm_multipath\ndm_round_robin\n'


def fixture(name):
    return (FIXTURES / name).read_text()


def test_the_udev_database_holds_the_wwid_scsi_id_prints_and_multipath_uses():
    assert mp.parse_udev_serial(fixture('udev-data.bookworm')) == WWID
    assert mp.parse_maps(fixture('show-maps.bookworm.json'))['itest-mpath']['wwid'] == WWID


def test_parse_maps_gives_each_path_its_checker_and_kernel_state():
    maps = mp.parse_maps(fixture('show-maps.bookworm.json'))
    assert list(maps) == ['itest-mpath']
    view = maps['itest-mpath']
    assert view['dm'].startswith('dm-')
    assert [(p['state'], p['dm_state']) for p in view['paths']] == [('ready', 'active')]
    assert view['paths'][0]['dev'].startswith('sd')
    assert mp.parse_maps(fixture('show-maps-empty.bookworm.json')) == {}


def test_parse_wwids_and_unit():
    assert mp.parse_wwids(fixture('wwids.bookworm')) == {WWID}
    assert mp.parse_wwids('') == set()
    unit = parse_show(fixture('systemctl-show.bookworm'), [mp.UNIT])[mp.UNIT]
    assert unit == {'UnitFileState': 'enabled', 'ActiveState': 'active'}


def test_fresh_host_plans_every_step_in_order():
    actions, text, pairs, missing = mp.plan(PARAMS, {'itest-mpath': WWID}, None, set(), ['dm_round_robin'],
                                            dict(UnitFileState='disabled', ActiveState='inactive'), None)
    assert missing == [] and pairs == [('itest-mpath', WWID)]
    assert [a.argv for a in actions] == [
        ['write', mp.MODULES_LOAD], ['modprobe', '-a', 'dm_round_robin'], ['write', PARAMS['dropin']],
        ['multipath', '-a', WWID], ['systemctl', 'enable', 'multipathd.service'],
        ['systemctl', 'start', 'multipathd.service']]
    assert isinstance(actions[2], FileWrite) and actions[2].text == text
    assert '\tmultipath {\n\t\twwid %s\n\t\talias itest-mpath\n\t}\n' % WWID in text
    assert '\t\tpath_selector "round-robin 0"\n' in text and '\tfind_multipaths strict\n' in text


def test_converged_host_plans_nothing():
    text = mp.plan(PARAMS, {'itest-mpath': WWID}, None, set(), [], RUNNING, LOAD)[1]
    actions = mp.plan(PARAMS, {'itest-mpath': WWID}, text, mp.parse_wwids(fixture('wwids.bookworm')), [],
                      parse_show(fixture('systemctl-show.bookworm'), [mp.UNIT])[mp.UNIT], LOAD)[0]
    assert actions == []


def test_a_changed_dropin_reconfigures_a_running_multipathd_only():
    old = mp.render('greedy', [], {}, [])
    actions = mp.plan(dict(PARAMS, find_multipaths='greedy'), {'itest-mpath': WWID}, old, set(), [], RUNNING, LOAD)[0]
    # greedy takes every path: no multipath -a
    assert [a.argv for a in actions] == [['write', PARAMS['dropin']], ['multipathd', 'reconfigure']]


def test_a_new_wwid_under_strict_reconfigures():
    text = mp.plan(PARAMS, {'itest-mpath': WWID}, None, set(), [], RUNNING, LOAD)[1]
    actions = mp.plan(PARAMS, {'itest-mpath': WWID}, text, set(), [], RUNNING, LOAD)[0]
    assert [a.argv for a in actions] == [['multipath', '-a', WWID], ['multipathd', 'reconfigure']]


def test_an_alias_without_a_lun_is_reported_and_left_out():
    params = dict(PARAMS, aliases=[dict(alias='a', wwid=WWID), dict(alias='b', volume='vol-2')])
    _actions, text, pairs, missing = mp.plan(params, {'b': None}, None, {WWID}, [], RUNNING, LOAD)
    assert missing == ['b'] and pairs == [('a', WWID)] and 'alias b' not in text


def test_yaml_booleans_are_find_multipaths_words():
    assert mp.find_multipaths_value(False) == 'no' and mp.find_multipaths_value(True) == 'yes'
    assert mp.find_multipaths_value('always') is None


@pytest.mark.parametrize('params, needle', [
    (dict(aliases=[dict(alias='x y', wwid=WWID)]), "aliases[0].alias='x y'"),
    (dict(aliases=[dict(alias='x', wwid='nope')]), "aliases[0].wwid='nope' is not a WWID"),
    (dict(aliases=[dict(alias='x', wwid=WWID, volume='v')]), 'give exactly one of wwid, iqn or volume'),
    (dict(aliases=[dict(alias='x', volume='v w')]), "aliases[0].volume='v w'"),
    (dict(find_multipaths='always'), "find_multipaths='always'"),
    (dict(tgt_device={'no path': 1}), "'no path' is not a multipath.conf device keyword"),
    (dict(tgt_device={'path_selector': 'a"b'}), 'tgt_device.path_selector'),
    (dict(blacklist_devnodes=['a\nb']), 'blacklist_devnodes[0]'),
    (dict(kernel_modules=['dm multipath']), "kernel_modules[0]='dm multipath'"),
    (dict(dropin='/etc/multipath/conf.d/x'), 'ending in .conf'),
])
def test_spec_errors_name_the_option_and_value(params, needle):
    errors = mp.spec_errors(dict(PARAMS, **params))
    assert any(needle in e for e in errors), errors


def test_good_input_has_no_errors():
    assert mp.spec_errors(PARAMS) == []


def test_multipathd_uses_the_udev_wwid_not_the_sysfs_one():
    # multipathd's %w column is the WWID of each path; sysfs spells the same designator naa.<id>
    assert fixture('show-paths.bookworm').split('\n')[1].split()[1] == WWID
    assert fixture('sysfs-wwid.bookworm').strip() != WWID
