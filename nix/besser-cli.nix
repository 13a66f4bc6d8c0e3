# The besser CLI: xtask's image, flash, lab and packaging commands as an
# installable `besser` (what `cargo xtask` runs in a checkout).
{ lib, rustPlatform, rustc, makeWrapper, besser, root }:
let
  cargo = builtins.fromTOML (builtins.readFile (root + "/Cargo.toml"));
  rustVersion = cargo.workspace.package.rust-version;
in
rustPlatform.buildRustPackage {
  pname = "besser";
  inherit (besser) version;
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions (map (p: root + "/${p}") [
      "Cargo.toml" "Cargo.lock" ".cargo" "xtask" "lab" "images" "klog" "driver"
      "kernel-patches" "nix"
    ]);
  };
  cargoLock.lockFile = root + "/Cargo.lock";
  cargoBuildFlags = [ "--package" "xtask" ];
  # The workspace's tests need QEMU, kernels and the network namespace the
  # lab creates: they run in `cargo xtask test`, not in the sandbox.
  doCheck = false;
  nativeBuildInputs = [ makeWrapper ];
  # The commands read the tree they work on (kernel-patches/, the driver's
  # sources, the lab's data): ship it, and point BESSER_ROOT at it.
  postInstall = ''
    mkdir -p $out/share/besser
    cp -r . $out/share/besser/
    rm -rf $out/share/besser/target
    mv $out/bin/xtask $out/bin/.besser-unwrapped
    makeWrapper $out/bin/.besser-unwrapped $out/bin/besser \
      --set-default BESSER_ROOT $out/share/besser
  '';
  meta = {
    description = "besser: build, flash and stress-test the Rust BES2600 driver";
    license = lib.licenses.gpl2Only;
    mainProgram = "besser";
    # Cargo.toml's rust-version is a hard floor for cargo.
    broken = lib.versionOlder rustc.version rustVersion;
  };
}
