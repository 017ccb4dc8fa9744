# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Check and diff mode as every read/plan/apply module of the collection supports them."""

    DOCUMENTATION = r'''
attributes:
  check_mode:
    description:
      - Supported; the module reads the state and reports the plan in RV(commands) without running it.
      - What an earlier task of the same check-mode run would create (a VG, a volume, an exported target) is
        missing then; the module warns and predicts the rest instead of failing.
    support: full
  diff_mode:
    description: Supported; before and after show the objects the module owns (see the module's notes).
    support: full
'''
