"""The table of refused inputs (tests/bad_inputs.yml) is well formed, and the documentation pages
generated from it (docs/bad-inputs.md, docs/docsite/rst/bad_inputs.rst) are up to date."""

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / 'scripts' / 'bad-inputs-doc.py'
ROWS = yaml.safe_load((REPO / 'tests' / 'bad_inputs.yml').read_text())['rows']
# every module and every role of the collection has its rows
TARGETS = ({path.stem for path in (REPO / 'plugins' / 'modules').glob('*.py') if path.stem != '__init__'}
           | {path.name for path in (REPO / 'roles').iterdir() if path.is_dir()})


def generated(*args):
    return subprocess.run([sys.executable, str(SCRIPT)] + list(args), capture_output=True, text=True,
                          check=True).stdout


def test_table_rows_are_complete_and_cover_every_module_and_role():
    ids = [row['id'] for row in ROWS]
    assert len(ids) == len(set(ids))
    assert {row['target'] for row in ROWS} == TARGETS
    for row in ROWS:
        assert row['where'] in ('module', 'lab', 'controller'), row['id']
        assert row['target'] in TARGETS, row['id']
        assert ('vars' if row['where'] == 'controller' else 'args') in row, row['id']
        # host state is what the lab provides: a row relying on one cannot run on the controller
        assert 'state' not in row or row['where'] == 'lab', row['id']
        assert row['option'] and row['expect'] and row['do'], row['id']
        # a secret is never echoed, so such a row has no value to find; every other row has one
        assert ('value' in row) != bool(row.get('secret')), row['id']
    assert len([row for row in ROWS if not row.get('destructive')]) >= 40


def test_markdown_page_is_up_to_date():
    assert (REPO / 'docs' / 'bad-inputs.md').read_text() == generated(), \
        'docs/bad-inputs.md is stale: python3 scripts/bad-inputs-doc.py > docs/bad-inputs.md'


def test_docsite_page_is_up_to_date_and_listed():
    assert (REPO / 'docs' / 'docsite' / 'rst' / 'bad_inputs.rst').read_text() == generated('--rst'), \
        'stale: python3 scripts/bad-inputs-doc.py --rst > docs/docsite/rst/bad_inputs.rst'
    sections = yaml.safe_load((REPO / 'docs' / 'docsite' / 'extra-docs.yml').read_text())['sections']
    assert any('bad_inputs' in section['toctree'] for section in sections)
