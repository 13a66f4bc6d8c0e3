{
  description = "besser: a Rust driver for the PineTab2's BES2600 Wi-Fi, its kernels, its lab";

  # nixos-25.05: the last release whose lib/minfeatures.nix still accepts
  # Nix 2.3.17+ (Debian's nix 2.8 evaluates it); its default kernel is 6.12.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      root = ./.;
      # The pure half (builtins only): the series, the fragments, the board table.
      besser = import ./nix/lib.nix { inherit root; };
      systems = [ "x86_64-linux" "aarch64-linux" ];
      pkgsFor = system: import nixpkgs {
        inherit system;
        overlays = [ self.overlays.default ];
      };
      forSystems = f: lib.genAttrs systems (system: f system (pkgsFor system));
      appliance = board: flavour: system: import ./nix/appliance.nix {
        inherit nixpkgs board flavour system;
        module = self.nixosModules.besser;
      };
      applianceOut = i:
        let sys = appliance i.board i.flavour i.system;
        in if i.board == "pinetab2" then sys.config.system.build.sdImage
        else sys.config.system.build.vm;
    in
    {
      lib = besser;

      overlays.default = import ./nix/overlay.nix { inherit besser root; };

      nixosModules.besser = import ./nix/nixos-module.nix {
        inherit besser;
        overlay = self.overlays.default;
      };
      nixosModules.default = self.nixosModules.besser;

      nixosConfigurations = lib.listToAttrs (map
        (i: lib.nameValuePair "lab-${i.name}" (appliance i.board i.flavour i.system))
        besser.images);

      packages = forSystems (system: pkgs:
        let mine = builtins.filter (i: i.system == system) besser.images;
        in
        {
          besser = pkgs.besser;
          default = pkgs.besser;
        }
        // lib.listToAttrs (lib.concatMap
          (i: [
            (lib.nameValuePair "linux-besser-${i.name}" pkgs.besserKernels.${i.name})
            (lib.nameValuePair "bes2600-rs-${i.name}" pkgs.linuxPackages_besser.${i.name}.bes2600-rs)
            (lib.nameValuePair "appliance-${i.name}" (applianceOut i))
          ])
          mine)
        // lib.optionalAttrs (mine != [ ]) {
          bes2600-rs = pkgs.linuxPackages_besser.${(builtins.head mine).name}.bes2600-rs;
        });

      # The CLI-based checks only where nixpkgs' rustc can build the CLI.
      checks = forSystems (system: pkgs: lib.optionalAttrs (!pkgs.besser.meta.broken) {
        # The flake, the layer and kernel-patches/ agree (the same check
        # `cargo xtask test` runs, on the sources the flake ships).
        packaging = pkgs.runCommand "besser-packaging-check" { } ''
          ${pkgs.besser}/bin/besser packaging check --drift-only
          touch $out
        '';
        cargo-test = pkgs.besser.overrideAttrs (_: {
          pname = "besser-cargo-test";
          doCheck = true;
          # Only the host-side unit tests: no QEMU, kernel or network here.
          cargoTestFlags = [ "--workspace" "--lib" ];
        });
      }
      # Each kernel's configuration step: nixpkgs' generate-config fails when
      # an option the fragments ask for does not survive (ignoreConfigErrors
      # is false on x86_64 and aarch64), as the dropped-option check of
      # `cargo xtask image` does.
      // lib.mapAttrs' (n: k: lib.nameValuePair "kernel-config-${n}" k.configfile) pkgs.besserKernels);

      formatter = forSystems (_: pkgs: pkgs.nixfmt-rfc-style);
    };
}
