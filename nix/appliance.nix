# The lab appliance as a NixOS system: the besser kernel, bes2600-rs, the
# lab agent and SSH. QEMU boards build `system.build.vm`; the PineTab2 an
# SD-card image (`system.build.sdImage`).
{ nixpkgs, module, board, flavour, system }:
nixpkgs.lib.nixosSystem {
  inherit system;
  modules = [
    module
    ({ lib, modulesPath, ... }: {
      imports =
        if board == "pinetab2"
        then [ "${modulesPath}/installer/sd-card/sd-image-aarch64.nix" ]
        else [ "${modulesPath}/virtualisation/qemu-vm.nix" ];
      hardware.besser = { enable = true; inherit board flavour; };
      services.besser-lab-agent.enable = true;
      networking.hostName = "besser-${board}";
      system.stateVersion = "25.05";
    })
  ];
}
