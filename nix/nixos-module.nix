# nixosModules.besser: `hardware.besser` (the besser kernel, bes2600-rs,
# firmware from a path the user supplies) and `services.besser-lab-agent`
# (what the lab needs on a device), so a NixOS PineTab2 is a lab device.
{ besser, overlay }:
{ config, lib, pkgs, ... }:
let
  cfg = config.hardware.besser;
  lab = config.services.besser-lab-agent;
  image = "${cfg.board}-${cfg.flavour}";
  firmwareNames = [ "best2002_fw_boot_sdio.bin" "best2002_fw_sdio.bin" ];
  firmware = pkgs.runCommand "bes2600-firmware" { } ''
    mkdir -p $out/lib/firmware/bes2600
    for f in ${lib.concatStringsSep " " firmwareNames}; do
      if [ ! -f ${cfg.firmwareDir}/$f ]; then
        echo "hardware.besser.firmwareDir = ${toString cfg.firmwareDir}: $f is missing" >&2
        exit 1
      fi
      cp ${cfg.firmwareDir}/$f $out/lib/firmware/bes2600/
    done
  '';
in
{
  options.hardware.besser = {
    enable = lib.mkEnableOption "the Rust BES2600 driver (bes2600-rs) and its besser kernel";
    board = lib.mkOption {
      type = lib.types.enum besser.boards;
      default = "pinetab2";
      description = "The board (images/src/board.rs) whose kernel to boot.";
    };
    flavour = lib.mkOption {
      type = lib.types.enum besser.flavours;
      default = "release";
      description = "release (what users run) or prove-locking (the lean lockdep kernel).";
    };
    firmwareDir = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = ''
        A directory holding ${lib.concatStringsSep " and " firmwareNames}
        (not redistributable; the PineTab2's vendor image ships them).
        null: no firmware, and bes2600 reports the missing file when it probes.
      '';
    };
  };

  options.services.besser-lab-agent = {
    enable = lib.mkEnableOption "what besser's lab needs on this device (tracefs, the wired link, SSH)";
    wiredInterface = lib.mkOption {
      type = lib.types.strMatching "[A-Za-z0-9_.-]+";
      default = "eth0";
      description = "The wired control interface: the lab's SSH link, not the Wi-Fi under test.";
    };
    dataPort = lib.mkOption {
      type = lib.types.port;
      default = 5001;
      description = "The TCP port the lab's listener takes on this device (inventory `listen_port`).";
    };
    authorizedKeys = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      description = "SSH keys of the lab hosts (root logs in, as on the lab appliance).";
    };
  };

  config = lib.mkMerge [
    (lib.mkIf (cfg.enable || lab.enable) {
      nixpkgs.overlays = [ overlay ];
    })
    (lib.mkIf cfg.enable {
      assertions = [{
        assertion = pkgs.linuxPackages_besser ? ${image};
        message = "hardware.besser: no ${image} kernel for ${pkgs.stdenv.hostPlatform.system}";
      }];
      boot.kernelPackages = pkgs.linuxPackages_besser.${image};
      boot.extraModulePackages = [ config.boot.kernelPackages.bes2600-rs ];
      # The C driver of other layers and flakes has the same module name.
      boot.kernelModules = [ "bes2600" ];
      hardware.firmware = lib.optional (cfg.firmwareDir != null) firmware;
    })
    (lib.mkIf lab.enable {
      systemd.services.besser-lab-agent = {
        description = "besser lab agent: tracefs, the wired interface, bes2600";
        wantedBy = [ "multi-user.target" ];
        after = [ "network-pre.target" ];
        path = [ pkgs.iproute2 pkgs.kmod pkgs.util-linux pkgs.coreutils pkgs.gnugrep ];
        environment = {
          BESSER_WIRED_IF = lab.wiredInterface;
          # NixOS owns the address (networking.interfaces / DHCP).
          BESSER_WIRED_ADDR = "none";
          BESSER_LOAD_MODULE = if cfg.enable then "1" else "0";
          BESSER_AGENT_DEFAULTS = "/dev/null";
        };
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = "${pkgs.besser-lab-agent}/bin/besser-lab-agent start";
          ExecStop = "${pkgs.besser-lab-agent}/bin/besser-lab-agent stop";
        };
      };
      services.openssh = {
        enable = true;
        settings.PermitRootLogin = "prohibit-password";
      };
      users.users.root.openssh.authorizedKeys.keys = lab.authorizedKeys;
      # The ramp's listener (nc, either flavour), iw for the Wi-Fi link.
      environment.systemPackages = [ pkgs.netcat-openbsd pkgs.iw pkgs.wpa_supplicant ];
      networking.firewall.allowedTCPPorts = [ lab.dataPort ];
    })
  ];
}
