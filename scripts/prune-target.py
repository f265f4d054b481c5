#!/usr/bin/env python3
"""Keep the shared Cargo target dir from filling the disk.

Every change to a workspace crate leaves a new test executable (~250 MB with
debug info) next to the old ones, and every rebuild a new incremental
session; a day of work filled 70 GB. This removes, in each profile:
  - executables (and their side files) that a newer build of the same name
    superseded more than MIN_AGE ago;
  - incremental directories untouched for more than MIN_AGE.
Anything still in use is newer than that, so concurrent builds are safe; a
removed artifact that is needed again is simply rebuilt.

    scripts/prune-target.py [TARGET_DIR] [--min-age-minutes N]
"""
import argparse
import os
import re
import shutil
import sys
import time

ARTIFACT = re.compile(r"^(?P<stem>.+)-(?P<hash>[0-9a-f]{16})(?P<ext>\..*)?$")


def prune_superseded_executables(deps, cutoff):
    builds = {}
    for name in os.listdir(deps):
        path = os.path.join(deps, name)
        match = ARTIFACT.match(name)
        if not match or match["ext"] or not os.path.isfile(path) or not os.access(path, os.X_OK):
            continue
        builds.setdefault(match["stem"], []).append((os.path.getmtime(path), match["hash"]))
    stale = {f"{stem}-{h}" for stem, found in builds.items()
             for mtime, h in sorted(found, reverse=True)[1:] if mtime < cutoff}
    freed = 0
    for name in os.listdir(deps):
        match = ARTIFACT.match(name)
        if match and f"{match['stem']}-{match['hash']}" in stale:
            path = os.path.join(deps, name)
            freed += os.path.getsize(path)
            os.remove(path)
    return freed


def prune_incremental(incremental, cutoff):
    freed = 0
    for name in os.listdir(incremental):
        path = os.path.join(incremental, name)
        if os.path.isdir(path) and os.path.getmtime(path) < cutoff:
            freed += sum(os.path.getsize(os.path.join(root, f))
                         for root, _, files in os.walk(path) for f in files)
            shutil.rmtree(path, ignore_errors=True)
    return freed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default=os.environ.get("CARGO_TARGET_DIR"))
    parser.add_argument("--min-age-minutes", type=float, default=120)
    args = parser.parse_args()
    if not args.target or not os.path.isdir(args.target):
        return 0  # nothing built yet
    cutoff = time.time() - args.min_age_minutes * 60
    freed = 0
    for profile in ("debug", "release"):
        base = os.path.join(args.target, profile)
        if os.path.isdir(os.path.join(base, "deps")):
            freed += prune_superseded_executables(os.path.join(base, "deps"), cutoff)
        if os.path.isdir(os.path.join(base, "incremental")):
            freed += prune_incremental(os.path.join(base, "incremental"), cutoff)
    if freed:
        print(f"pruned {freed / 1e9:.1f} GB of superseded build output from {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
