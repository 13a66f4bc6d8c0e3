"""Validates every kas file of a directory with kas's own loader (the schema
and file-version checks `kas build` runs first). Nothing is fetched.

Usage: python3 kas_schema.py DIR   (run with the packaging venv's python)
"""
import sys
from pathlib import Path

from kas import __file_version__, __version__
from kas.includehandler import ConfigFile, LoadConfigException

failed = 0
files = sorted(Path(sys.argv[1]).glob("*.yml"))
if not files:
    print(f"{sys.argv[1]}: no kas files", file=sys.stderr)
    sys.exit(1)
for f in files:
    try:
        ConfigFile.load(str(f))
    except LoadConfigException as e:
        failed += 1
        print(f"{f}: {e}", file=sys.stderr)
if failed:
    sys.exit(1)
print(f"yocto: {len(files)} kas files valid for kas {__version__} (file format <= {__file_version__})")
