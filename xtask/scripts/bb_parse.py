"""bitbake's own parser (the `bb` library of the `bitbake-setup` wheel) over
meta-besser. What this covers, and what it does not:

- covers: bitbake syntax of every recipe, include and conf file; that every
  `require`/`include` of the layer resolves; override syntax; and, with the
  datastore bitbake builds, the expanded SRC_URI of linux-besser for every
  MACHINE x BESSER_FLAVOUR (the patches in series order, then common.cfg,
  the machine's board .cfgs, the flavour's), compared with what
  `cargo xtask image` uses (JSON on stdin);
- does NOT cover: openembedded-core. Its classes (module-rust, core-image,
  update-rc.d, systemd) and linux-yocto.inc are *empty stubs* here, so
  nothing they check or define is checked: this is a shape check, not a
  build. The full parse against real openembedded-core needs a checkout
  of it and of bitbake (see the README, "For distro maintainers").

Usage: python3 bb_parse.py LAYER_DIR < expected.json
"""
import json
import logging
import os
import sys
import tempfile
import types

# The wheel ships bb without bitbake's hash-equivalence client, which
# bb.siggen imports but parsing never calls.
for missing in ("hashserv", "hashserv.client"):
    sys.modules.setdefault(missing, types.ModuleType(missing))

import bb  # noqa: E402
import bb.data  # noqa: E402
import bb.parse  # noqa: E402
import bb.siggen  # noqa: E402
import bb.parse.parse_py.BBHandler  # noqa: F401 (registers the handler)
import bb.parse.parse_py.ConfHandler  # noqa: F401

logging.getLogger("BitBake").setLevel(logging.ERROR)

STUB_CLASSES = ["base", "module-rust", "core-image", "update-rc.d", "systemd"]
STUB_INCLUDES = ["recipes-kernel/linux/linux-yocto.inc"]


def main():
    layer = os.path.abspath(sys.argv[1])
    expected = json.load(sys.stdin)
    failures = []
    with tempfile.TemporaryDirectory() as stub:
        os.makedirs(os.path.join(stub, "classes"))
        os.makedirs(os.path.join(stub, "classes-recipe"))
        for c in STUB_CLASSES:
            open(os.path.join(stub, "classes-recipe", c + ".bbclass"), "w").close()
        for inc in STUB_INCLUDES:
            p = os.path.join(stub, inc)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            open(p, "w").close()

        def fresh():
            d = bb.data.init()
            d.setVar("BBPATH", stub)
            d.setVar("TOPDIR", stub)
            d.setVar("LAYERDIR", layer)
            d.setVar("UNPACKDIR", "/unpack")
            d.setVar("COMMON_LICENSE_DIR", "/licenses")
            d.setVar("OVERRIDES", "")
            d.setVar("BB_SIGNATURE_HANDLER", "noop")
            d.setVar("__bbclasstype", "recipe")
            bb.parse.siggen = bb.siggen.init(d)
            bb.parse.handle(os.path.join(layer, "conf/layer.conf"), d, True)
            d.delVar("LAYERDIR")
            d.setVar("BBPATH", d.getVar("BBPATH") + ":" + stub)
            return d

        confs = []
        for dirpath, _, names in os.walk(os.path.join(layer, "conf")):
            confs += [os.path.join(dirpath, n) for n in names if n.endswith((".conf", ".inc"))]
        for c in sorted(confs):
            try:
                bb.parse.handle(c, fresh(), True)
            except Exception as e:  # bb.parse.ParseError and friends
                if os.environ.get("BB_PARSE_DEBUG"): raise
                failures.append(f"{os.path.relpath(c, layer)}: {e}")
        recipes = []
        for dirpath, _, names in os.walk(layer):
            recipes += [os.path.join(dirpath, n) for n in names if n.endswith(".bb")]
        parsed = {}
        for r in sorted(recipes):
            try:
                d = fresh()
                bb.parse.handle(os.path.join(layer, "conf/distro/besser.conf"), d, True)
                parsed[r] = bb.parse.handle(r, d)[""]
            except Exception as e:
                if os.environ.get("BB_PARSE_DEBUG"): raise
                failures.append(f"{os.path.relpath(r, layer)}: {e}")

        kernel = os.path.join(layer, "recipes-kernel/linux/linux-besser_6.12.bb")
        for img in expected["images"]:
            try:
                d = fresh()
                bb.parse.handle(os.path.join(layer, "conf/distro/besser.conf"), d, True)
                d.setVar("MACHINE", img["machine"])
                d.setVar("OVERRIDES", img["machine"])
                d.setVar("BESSER_FLAVOUR", img["flavour"])
                d = bb.parse.handle(kernel, d)[""]
            except Exception as e:
                if os.environ.get("BB_PARSE_DEBUG"): raise
                failures.append(f"linux-besser for {img['name']}: {e}")
                continue
            uris = [u.split(";")[0] for u in (d.getVar("SRC_URI") or "").split()]
            files = [u[len("file://"):] for u in uris if u.startswith("file://")]
            if files != img["files"]:
                failures.append(
                    f"linux-besser for {img['name']} (MACHINE={img['machine']}): SRC_URI has\n"
                    f"      {files}\n    where cargo xtask image uses\n      {img['files']}"
                )
            if "rust" not in (d.getVar("KERNEL_FEATURES") or "").split():
                failures.append(f"linux-besser for {img['name']}: `rust` not in KERNEL_FEATURES")
        module = parsed.get(os.path.join(layer, "recipes-kernel/bes2600-rs/bes2600-rs_0.1.0.bb"))
        if module is not None and "rust" not in (module.getVar("KERNEL_FEATURES") or "").split():
            failures.append("bes2600-rs: `rust` not in KERNEL_FEATURES (module-rust would skip it)")

    if failures:
        print("bitbake parse (shape check, oe-core classes stubbed):", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        sys.exit(1)
    print(
        f"yocto: bitbake {bb.__version__} parses {len(recipes)} recipes and {len(confs)} conf files "
        f"(oe-core classes stubbed: a shape check); linux-besser's SRC_URI matches "
        f"cargo xtask image for {len(expected['images'])} machine x flavour pairs"
    )


main()
