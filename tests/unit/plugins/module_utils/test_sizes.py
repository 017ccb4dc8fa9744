import pytest

from ansible_collections.openblock.storage.plugins.module_utils.sizes import (
    SizeError, human, parse_percent, parse_size, round_up)


@pytest.mark.parametrize('text, expected', [
    ('1073741824', 1 << 30),
    (4096, 4096),
    ('512M', 512 << 20),
    ('512MiB', 512 << 20),
    ('10g', 10 << 30),
    ('1.5G', 3 << 29),
    ('4k', 4096),
    ('2T', 2 << 40),
    ('0', 0),
])
def test_parse_size_reads_binary_units_exactly(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize('text', ['', 'ten', '-1G', '10X', '10%VG', '1.3B', True, -5])
def test_parse_size_names_option_and_value(text):
    with pytest.raises(SizeError) as err:
        parse_size(text, option='volumes[3].size')
    assert 'volumes[3].size' in str(err.value)
    assert repr(text) in str(err.value)


def test_percent_sizes():
    assert parse_percent('95%VG') == (95.0, 'VG')
    assert parse_percent('100%free') == (100.0, 'FREE')
    assert parse_percent('0%VG') is None
    assert parse_percent('120%FREE') is None
    assert parse_percent('10G') is None


def test_round_up_to_whole_extents():
    extent = 4 << 20
    assert round_up(1, extent) == extent
    assert round_up(extent, extent) == extent
    assert round_up(extent + 1, extent) == 2 * extent
    assert round_up(0, extent) == 0


def test_human():
    assert human(1 << 30) == '1GiB'
    assert human(3 << 29) == '1536MiB'
    assert human(1000) == '1000B'
