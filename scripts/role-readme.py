"""Render the "Variables" section of a role's README from its meta/argument_specs.yml.

Usage: python3 scripts/role-readme.py ROLE_DIR  -- prints the Markdown table; the README's hand-written
introduction stays above it, so the variables never drift from what the role validates.
"""
import sys
from pathlib import Path

import yaml


def cell(text):
    return ' '.join(str(text).split()).replace('|', '\\|')


def rows(options, prefix=''):
    for name, spec in options.items():
        description = spec.get('description', '')
        if isinstance(description, list):
            description = ' '.join(description)
        kind = spec.get('type', 'str') + ('/%s' % spec['elements'] if spec.get('elements') else '')
        default = ('`%s`' % cell(spec['default'])) if 'default' in spec else ('required' if spec.get('required') else 'computed')
        yield '| `%s%s` | %s | %s | %s |' % (prefix, name, kind, default, cell(description))
        if spec.get('options'):
            yield from rows(spec['options'], prefix + name + '[].')


def main(role_dir):
    specs = yaml.safe_load((Path(role_dir) / 'meta' / 'argument_specs.yml').read_text())['argument_specs']
    for entry, spec in specs.items():
        print('### Entry point `%s`\n' % entry)
        print(cell(spec.get('short_description', '')) + '\n')
        if spec.get('options'):
            print('| Variable | Type | Default | Description |')
            print('|---|---|---|---|')
            print('\n'.join(rows(spec['options'])))
        print()


if __name__ == '__main__':
    main(sys.argv[1])
