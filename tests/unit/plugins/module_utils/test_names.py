# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iSCSI name validation shared by every module and role: what it accepts, and that a name it
refuses is never answered with a suggestion that is itself refused."""

import pytest

from ansible_collections.openblock.storage.plugins.module_utils.names import iscsi_name_error


@pytest.mark.parametrize('name', ['iqn.2010-10.org.openstack:volume-1', 'iqn.2026-11.test.iscsi:disk1',
                                  'eui.02004567A425678D', 'naa.52004567BA64678D'])
def test_valid_names(name):
    assert iscsi_name_error(name, 'targets') is None


def test_upper_case_iqn_is_told_its_lower_case_form():
    error = iscsi_name_error('iqn.2026-11.Test.Bad:Vol1', 'targets')
    assert error == ("targets='iqn.2026-11.Test.Bad:Vol1' has upper-case letters; iSCSI names are lower case "
                     "(write 'iqn.2026-11.test.bad:vol1')")
    assert iscsi_name_error('iqn.2026-11.test.bad:vol1', 'targets') is None
    # upper case after the colon too (the pattern alone would let it through)
    assert iscsi_name_error('iqn.2010-10.org.openstack:Volume-1', 'targets').endswith(
        "(write 'iqn.2010-10.org.openstack:volume-1')")


@pytest.mark.parametrize('name', ['iqn.2026-11.Test.Bad vol1', 'iqn.2026-11.Test.bad:a b', 'iqn.2026-13.Test.bad:x',
                                  'iqn.2026-11.Test_bad:x'])
def test_upper_case_and_another_fault_gets_no_invalid_suggestion(name):
    error = iscsi_name_error(name, 'targets')
    assert error.startswith('targets=%r is not an iSCSI name (and iqn. names are lower case); expected iqn.' % name)
    assert 'write' not in error and repr(name.lower()) not in error


def test_every_suggested_name_is_valid():
    for name in ['iqn.2026-11.Test.Bad:Vol1', 'iqn.2026-11.Test.Bad vol1', 'iqn.2026-11.TEST.bad:disk1',
                 'IQN.2026-11.test.bad:vol1']:
        error = iscsi_name_error(name, 'targets')
        if "(write '" in error:
            suggested = error.rsplit("(write '", 1)[1].rstrip("')")
            assert iscsi_name_error(suggested, 'targets') is None, error
