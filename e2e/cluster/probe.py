#!/usr/bin/env python3
"""Readiness probes for `up`, stdlib only (a fresh CI machine has no kubectl/curl).

    probe.py http URL                 200 from a plain HTTP endpoint
    probe.py api PATH                 200 from the API server
    probe.py node-ready NAME          node NAME has condition Ready=True
    probe.py exists PATH              object at PATH exists (200)

The API server is read from KW_SERVER, KW_TOKEN and KW_CA. Exit 0 on success.
"""

import json
import os
import ssl
import sys
import urllib.request


def get(url, token=None, ca=None):
    req = urllib.request.Request(url)
    ctx = None
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if ca:
        ctx = ssl.create_default_context(cafile=ca)
    with urllib.request.urlopen(req, timeout=3, context=ctx) as resp:
        return resp.status, resp.read()


def api(path):
    return get(os.environ["KW_SERVER"] + path, os.environ["KW_TOKEN"], os.environ["KW_CA"])


def main():
    cmd, arg = sys.argv[1], sys.argv[2]
    try:
        if cmd == "http":
            status, _ = get(arg)
            return status == 200
        if cmd in ("api", "exists"):
            status, _ = api(arg)
            return status == 200
        if cmd == "node-ready":
            status, body = api("/api/v1/nodes/" + arg)
            conds = json.loads(body).get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
    except Exception:  # not ready yet: any error means "try again"
        return False
    sys.exit(f"unknown probe {cmd}")


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
