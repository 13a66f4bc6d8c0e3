# overlays.default: the besser CLI, every besser kernel this platform can
# run (`besserKernels.<board>-<flavour>`), and their package sets with
# bes2600-rs (`linuxPackages_besser.<board>-<flavour>.bes2600-rs`).
{ besser, root }:
final: prev:
let
  inherit (final) lib;
  system = final.stdenv.hostPlatform.system;
  mine = builtins.filter (i: i.system == system) besser.images;
  kernelFor = i:
    final.callPackage ./kernel.nix {
      inherit besser root;
      inherit (i) board flavour;
    };
  packagesFor = kernel:
    (final.linuxPackagesFor kernel).extend (kself: _: {
      bes2600-rs = kself.callPackage ./bes2600-rs.nix { inherit besser root; };
    });
in
{
  besser = final.callPackage ./besser-cli.nix { inherit besser root; };
  besserKernels = lib.listToAttrs (map (i: lib.nameValuePair i.name (kernelFor i)) mine);
  linuxPackages_besser = lib.mapAttrs (_: packagesFor) final.besserKernels;
  # The lab agent (lab/agent/besser-lab-agent), for the NixOS module.
  besser-lab-agent = final.runCommand "besser-lab-agent-${besser.version}" { } ''
    install -D -m 0755 ${root + "/lab/agent/besser-lab-agent"} $out/bin/besser-lab-agent
    patchShebangs $out/bin
  '';
}
