#!/usr/bin/python3
"""Fetches Silero VAD v5 (silero_vad_v5.onnx) from the npm package @ricky0123/vad-web.

  /usr/bin/python3 models/fetch_silero_vad.py [-o models/generated/silero_vad_v5.onnx] [--quiet]

The model (2.3 MB) is too big to commit, so it is fetched: `npm pack` downloads
the pinned package version's tarball (npm checks it against the registry's
integrity hash), the script takes package/dist/silero_vad_v5.onnx out of it and
checks the file's sha256 before moving it into place (atomically, so a failed
fetch leaves no file). Idempotent: when the output already has the right sha256
it does nothing (and prints nothing with --quiet). Exit status 0 on success, 1
on any failure (no npm, no network, wrong checksum).
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "@ricky0123/vad-web"
VERSION = "0.0.31"
MEMBER = "package/dist/silero_vad_v5.onnx"
SHA256 = "2623a2953f6ff3d2c1e61740c6cdb7168133479b267dfef114a4a3cc5bdd788f"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "models", "generated", "silero_vad_v5.onnx")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(out, quiet=False):
    """Makes `out` hold the pinned model; returns an error message or None."""
    if os.path.exists(out) and sha256(out) == SHA256:
        if not quiet:
            print(f"{out}: present, sha256 ok")
        return None
    npm = shutil.which("npm")
    if not npm:
        return "npm not found (scripts/setup.sh installs it)"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    print(f"fetching {PACKAGE}@{VERSION} with npm pack -> {out}", flush=True)
    with tempfile.TemporaryDirectory(prefix="kiln-silero-") as tmp:
        proc = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp,
                               "--silent", "--no-audit", "--no-fund"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        tarballs = [f for f in os.listdir(tmp) if f.endswith(".tgz")]
        if proc.returncode != 0 or len(tarballs) != 1:
            return (f"npm pack {PACKAGE}@{VERSION} failed (exit {proc.returncode}): "
                    f"{proc.stderr.strip()[-2000:]}")
        part = os.path.join(tmp, "silero_vad_v5.onnx")
        try:
            with tarfile.open(os.path.join(tmp, tarballs[0]), "r:gz") as tar:
                src = tar.extractfile(MEMBER)
                if src is None:
                    return f"{tarballs[0]}: {MEMBER} is not a regular file"
                with open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        except (KeyError, tarfile.TarError, OSError) as e:
            return f"cannot take {MEMBER} out of {tarballs[0]}: {e}"
        got = sha256(part)
        if got != SHA256:
            return f"{MEMBER} has sha256 {got}, expected {SHA256}"
        tmp_out = f"{out}.tmp{os.getpid()}"
        shutil.copyfile(part, tmp_out)
        os.replace(tmp_out, out)
    print(f"{out}: fetched, sha256 ok")
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default=DEFAULT_OUT,
                    help="where to put the model (default models/generated/silero_vad_v5.onnx)")
    ap.add_argument("--quiet", action="store_true", help="print nothing when the model is present")
    args = ap.parse_args(argv)
    err = fetch(args.output, args.quiet)
    if err:
        print(f"fetch_silero_vad: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
