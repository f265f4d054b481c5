#!/usr/bin/env python3
"""Turn `containerd config default` (stdin) into the e2e node's config (stdout).

Everything the node writes goes under our own dirs, and
restrict_oom_score_adj is on: without it every sandbox fails here with
"runc create failed: can't get final child's PID from pipe: EOF", because
the machine may not lower oom_score_adj.
"""

import argparse
import re
import sys


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--root", "--state", "--socket", "--sandbox-image", "--cni-conf-dir"):
        ap.add_argument(opt, required=True)
    ap.add_argument("--cni-bin-dir", default="/usr/lib/cni")
    args = ap.parse_args()

    text = sys.stdin.read()
    edits = [
        (r'(?m)^root = ".*"$', f'root = "{args.root}"'),
        (r'(?m)^state = ".*"$', f'state = "{args.state}"'),
        (r'(?m)^(\[grpc\]\n(?:  .*\n)*?  address = )".*"', rf'\1"{args.socket}"'),
        (r"restrict_oom_score_adj = false", "restrict_oom_score_adj = true"),
        (r"netns_mounts_under_state_dir = false", "netns_mounts_under_state_dir = true"),
        (r'sandbox_image = ".*"', f'sandbox_image = "{args.sandbox_image}"'),
        (r'bin_dir = "/opt/cni/bin"', f'bin_dir = "{args.cni_bin_dir}"'),
        (r'conf_dir = "/etc/cni/net.d"', f'conf_dir = "{args.cni_conf_dir}"'),
        (r'path = "/opt/containerd"', f'path = "{args.root}/opt"'),
        (r'(runtimes\.runc\.options\]\n(?:[ \t]+.*\n)*?[ \t]+Root = )""', rf'\1"{args.state}/runc"'),
    ]
    for pattern, repl in edits:
        text, n = re.subn(pattern, repl, text, count=1)
        if n != 1:
            sys.exit(f"containerd-config.py: no match for {pattern!r}; containerd's defaults changed")
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
