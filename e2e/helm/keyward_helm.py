#!/usr/bin/env python3
"""Helm 4 for the e2e tests, through the helm-sdkpy library (no helm binary).

    keyward_helm.py install   RELEASE CHART_DIR -n NS [--values-json J] [--wait] [--timeout S]
    keyward_helm.py upgrade   RELEASE CHART_DIR -n NS [--values-json J] [--install] [--wait]
    keyward_helm.py uninstall RELEASE -n NS [--wait]
    keyward_helm.py lint      CHART_DIR
    keyward_helm.py status    RELEASE -n NS

The kubeconfig comes from --kubeconfig or $KUBECONFIG. Prints the result as
one JSON document on stdout; on failure prints the error on stderr, exit 1.
Run it with the venv's python: $KEYWARD_E2E_HELM_PYTHON.
"""

import argparse
import asyncio
import json
import os
import sys

import helm_sdkpy as helm


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    sub = ap.add_subparsers(dest="cmd", required=True)

    def release_cmd(name, with_chart):
        p = sub.add_parser(name)
        p.add_argument("release")
        if with_chart:
            p.add_argument("chart")
            p.add_argument("--values-json", default="{}", help="chart values as a JSON object")
        p.add_argument("-n", "--namespace", default="default")
        p.add_argument("--wait", action="store_true", help="wait for the resources")
        p.add_argument("--timeout", type=int, default=120, help="seconds")
        return p

    release_cmd("install", True)
    release_cmd("upgrade", True).add_argument("--install", action="store_true")
    release_cmd("uninstall", False)
    release_cmd("status", False)
    sub.add_parser("lint").add_argument("chart")
    return ap.parse_args(argv)


async def run(args):
    config = helm.Configuration(namespace=getattr(args, "namespace", "default"), kubeconfig=args.kubeconfig)
    if args.cmd == "lint":
        return await helm.Lint(config).run(os.path.abspath(args.chart))
    if args.cmd == "install":
        return await helm.Install(config).run(
            args.release, os.path.abspath(args.chart), values=json.loads(args.values_json),
            wait=args.wait, timeout=args.timeout)
    if args.cmd == "upgrade":
        return await helm.Upgrade(config).run(
            args.release, os.path.abspath(args.chart), values=json.loads(args.values_json),
            install=args.install, wait=args.wait, timeout=args.timeout)
    if args.cmd == "uninstall":
        return await helm.Uninstall(config).run(args.release, wait=args.wait, timeout=args.timeout)
    if args.cmd == "status":
        return await helm.Status(config).run(args.release)
    raise AssertionError(args.cmd)


def main(argv):
    args = parse_args(argv)
    try:
        result = asyncio.run(run(args))
    except helm.HelmError as err:
        print(f"helm {args.cmd} failed: {err}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, default=str)
    sys.stdout.write("\n")
    if args.cmd == "lint" and result.get("Errors"):
        # helm-sdkpy drops the messages' text; the paths still say where.
        bad = [m["Path"] for m in result.get("Messages", []) if m.get("Severity", 0) >= 3]
        print(f"helm lint found errors in: {', '.join(bad) or args.chart}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
