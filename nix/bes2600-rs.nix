# bes2600.ko, the Rust driver, against a besser kernel. Call it from that
# kernel's package set, (linuxPackagesFor kernel).callPackage, so that
# kernelModuleMakeFlags points at the same kernel (as nixpkgs'
# rust-out-of-tree-module does).
{ lib, kernel, kernelModuleMakeFlags, besser, root }:
kernel.stdenv.mkDerivation {
  pname = "bes2600-rs";
  inherit (besser) version;
  # The module mounts the core's files by #[path]: both directories, in
  # the repository's layout (nix/boards.json names them).
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions (map (d: root + "/${d}") besser.table.driver.sources);
  };
  sourceRoot = "source/driver/kmod";
  nativeBuildInputs = kernel.moduleBuildDependencies;
  makeFlags = kernelModuleMakeFlags ++ [
    "KDIR=${kernel.dev}/lib/modules/${kernel.modDirVersion}/build"
  ];
  installFlags = [ "INSTALL_MOD_PATH=${placeholder "out"}" ];
  installTargets = [ "modules_install" ];
  meta = {
    description = "Rust driver for the BES2600 Wi-Fi chip (SDIO) of the Pine64 PineTab2";
    license = lib.licenses.gpl2Only;
    platforms = lib.platforms.linux;
    # It needs a Rust kernel with the besser series' abstractions: take the
    # kernel from linuxPackages_besser (the overlay), not any linux_6_12.
    broken = !(kernel.withRust or false);
  };
}
