# One besser kernel: nixpkgs' linux_6_12 with kernel-patches/series as
# kernelPatches and the image's merged fragments as structuredExtraConfig,
# as `cargo xtask image` builds it (same patches, same options; nixpkgs'
# common-config is the baseline instead of allnoconfig).
{ lib, linux_6_12, besser, root, board, flavour }:
let
  config = besser.configFor board flavour;
  unquote = v:
    let m = builtins.match "\"(.*)\"" v;
    in if m == null then v else builtins.head m;
  # Fragment values (nix/lib.nix) as lib.kernel values. Every one is forced:
  # what the fragments say wins over nixpkgs' common-config, as a later
  # fragment wins in merge_config.sh.
  toKernel = v:
    if v == "y" then lib.kernel.yes
    else if v == "m" then lib.kernel.module
    else if v == "n" then lib.kernel.no
    else lib.kernel.freeform (unquote v);
  localVersion = unquote (config.LOCALVERSION or "\"\"");
in
linux_6_12.override (old: {
  kernelPatches = (old.kernelPatches or [ ]) ++ map
    (name: { inherit name; patch = root + "/kernel-patches/${name}"; })
    besser.patches;
  structuredExtraConfig = lib.mapAttrs (_: v: lib.mkForce (toKernel v)) config;
  # The fragments' LOCALVERSION is part of `uname -r` and of the modules'
  # directory (mainline.nix sets modDirVersion, so it goes in argsOverride).
  argsOverride = (old.argsOverride or { }) // {
    modDirVersion = "${lib.versions.pad 3 linux_6_12.version}${localVersion}";
    extraMeta = {
      branch = "6.12";
      description = "Linux 6.12 with Rust and the besser series (${board}, ${flavour})";
    };
  };
})
