# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Size strings as users write them, turned into exact byte counts.

Every size is an integer number of bytes inside the collection; floats never take part in a
comparison. Units are powers of 1024, as LVM reads them (``10G`` == ``10GiB`` == 10 * 2**30).
"""

from __future__ import annotations

import re

UNITS = {'': 1, 'b': 1, 'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30, 't': 1 << 40, 'p': 1 << 50}

_SIZE_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([bkmgtp]?)(?:i?b)?\s*$', re.IGNORECASE)
_PERCENT_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)%(VG|FREE)\s*$', re.IGNORECASE)


class SizeError(ValueError):
    """A size string that cannot be read; the message says what is accepted."""


def parse_size(value, option='size'):
    """Return the number of bytes that ``value`` names.

    Accepts an int (bytes) or a string such as ``1073741824``, ``512M``, ``10G``, ``1.5GiB``.
    A fractional value must come out as a whole number of bytes.
    """
    if isinstance(value, bool):
        raise SizeError(_bad(option, value))
    if isinstance(value, int):
        if value < 0:
            raise SizeError(_bad(option, value))
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise SizeError(_bad(option, value))
    number, unit = match.groups()
    multiplier = UNITS[unit.lower()]
    if '.' in number:
        whole, frac = number.split('.')
        numerator = int(whole + frac) * multiplier
        denominator = 10 ** len(frac)
        if numerator % denominator:
            raise SizeError('%s=%r is not a whole number of bytes; use a smaller unit' % (option, value))
        return numerator // denominator
    return int(number) * multiplier


def parse_percent(value):
    """Return ``(percent, 'VG'|'FREE')`` for ``NN%VG`` / ``NN%FREE``, else None."""
    match = _PERCENT_RE.match(str(value))
    if not match:
        return None
    percent = float(match.group(1))
    if not 0 < percent <= 100:
        return None
    return percent, match.group(2).upper()


def round_up(size, extent):
    """Round ``size`` up to a whole number of extents, as LVM does on create and extend."""
    if extent <= 0:
        return size
    return -(-size // extent) * extent


def human(size):
    """Short binary-unit rendering of a byte count, for messages only."""
    for unit in ('P', 'T', 'G', 'M', 'K'):
        step = UNITS[unit.lower()]
        if size >= step and size % step == 0:
            return '%d%siB' % (size // step, unit)
    return '%dB' % size


def _bad(option, value):
    return ('%s=%r is not a size; write a number of bytes or a number with a unit '
            'B, K, M, G, T or P (powers of 1024), for example 10G or 512MiB' % (option, value))
