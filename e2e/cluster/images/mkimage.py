#!/usr/bin/env python3
"""Pack files (static binaries) into a docker-archive image tarball.

The tarball holds manifest.json, the image config and one layer, which is
all `ctr images import` needs. No registry, no Docker.

    mkimage.py --tag NAME:TAG --out image.tar [--entrypoint /bin/x] [--with-libs]
               [--link /bin/sh=/bin/busybox] FILE[=/path/in/image] ...

A FILE without `=` lands in /bin/<basename>. With --with-libs, the shared
libraries a dynamically linked binary needs (glibc, libgcc_s, the loader)
are packed at their host paths, so a plain `cargo build` binary runs.
"""

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time


def add_dir(layer, path, seen):
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d and d not in seen:
            seen.add(d)
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            layer.addfile(info)


def shared_libs(binary):
    """Paths of the shared libraries (and loader) `binary` needs, per ldd."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if out.returncode != 0 or "not a dynamic executable" in out.stdout + out.stderr:
        return []
    libs = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if "=>" in parts:
            path = parts[parts.index("=>") + 1]
        elif parts and parts[0].startswith("/"):
            path = parts[0]  # the loader
        else:
            continue  # linux-vdso.so.1
        if path.startswith("/"):
            libs.append(path)
    return libs


def build_layer(files, links):
    buf = io.BytesIO()
    seen = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, dereference=True) as layer:
        add_dir(layer, "/tmp", seen)
        for spec in files:
            src, _, dest = spec.partition("=")
            dest = dest or "/bin/" + os.path.basename(src)
            add_dir(layer, os.path.dirname(dest), seen)
            info = layer.gettarinfo(src, arcname=dest.lstrip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755 if os.access(src, os.X_OK) else 0o644
            with open(src, "rb") as fh:
                layer.addfile(info, fh)
        files_in_image = {spec.partition("=")[2] or "/bin/" + os.path.basename(spec) for spec in files}
        for spec in links:
            name, _, target = spec.partition("=")
            if not target:
                sys.exit(f"--link {spec!r}: expected NAME=TARGET")
            if name in files_in_image:
                sys.exit(f"--link {spec!r} would replace a file of the image")
            add_dir(layer, os.path.dirname(name), seen)
            info = tarfile.TarInfo(name.lstrip("/"))
            info.type = tarfile.SYMTYPE
            info.linkname = target
            layer.addfile(info)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tag", required=True, help="image reference, e.g. keyward.local/webhook:e2e")
    ap.add_argument("--out", required=True, help="where to write the docker-archive tarball")
    ap.add_argument("--entrypoint", help="entrypoint path inside the image")
    ap.add_argument("--link", action="append", default=[], help="symlink NAME=TARGET")
    ap.add_argument("--with-libs", action="store_true",
                    help="also pack the shared libraries the files need (per ldd), at their host paths")
    ap.add_argument("files", nargs="+", help="FILE or FILE=/path/in/image")
    args = ap.parse_args()
    if args.with_libs:
        wanted = {f"{lib}={lib}" for f in args.files for lib in shared_libs(f.partition("=")[0])}
        args.files += sorted(wanted)

    layer = build_layer(args.files, args.link)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0)),
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "keyward e2e mkimage.py"}],
    }
    if args.entrypoint:
        config["config"]["Entrypoint"] = [args.entrypoint]
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [args.tag], "Layers": ["layer.tar"]}]

    with tarfile.open(args.out, "w") as out:
        for name, data in (
            ("layer.tar", layer),
            (config_name, config_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            out.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
