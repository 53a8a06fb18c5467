{
  description = "user-sync: a user service and a notification service kept in sync through NATS JetStream";

  # The lock pins nixpkgs-unstable of 2026-08-13. The URL must match the lock's
  # `original` (owner written `nixos`), or Nix re-locks on first use.
  inputs.nixpkgs.url = "github:nixos/nixpkgs/nixpkgs-unstable";

  outputs =
    { nixpkgs, ... }:
    let
      inherit (nixpkgs) lib;

      # The platforms `mongodb-ce` ships binaries for (it throws on any other) that
      # this nixpkgs still supports: x86_64-darwin was dropped before the pinned
      # revision (`import nixpkgs` throws "Nixpkgs 26.11 has dropped support for
      # x86_64-darwin").
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "aarch64-darwin"
      ];

      forAllSystems =
        f:
        lib.genAttrs systems (
          system:
          f (
            import nixpkgs {
              inherit system;
              # MongoDB's SSPL licence is unfree; allow that one package and nothing else.
              config.allowUnfreePredicate = pkg: builtins.elem (lib.getName pkg) [ "mongodb-ce" ];
            }
          )
        );

      version = (lib.importTOML ./Cargo.toml).workspace.package.version;

      # One workspace member as a package. The check phase would run `cargo test`,
      # which needs PostgreSQL, MongoDB and NATS: none exist in the build sandbox.
      workspaceMember =
        pkgs: name:
        pkgs.rustPlatform.buildRustPackage {
          pname = name;
          inherit version;
          src = lib.cleanSource ./.;
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [
            "-p"
            name
          ];
          doCheck = false;
          # sqlx macros must never try to reach a database at build time.
          env.SQLX_OFFLINE = "true";
          meta.mainProgram = name;
        };
    in
    {
      packages = forAllSystems (pkgs: rec {
        user-service = workspaceMember pkgs "user-service";
        notification-service = workspaceMember pkgs "notification-service";
        loadtest = workspaceMember pkgs "loadtest";
        default = user-service;
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages =
            with pkgs;
            [
              rustc
              cargo
              clippy
              rustfmt
              rust-analyzer
              pkg-config
              postgresql_17
              mongodb-ce
              mongosh
              nats-server
              natscli
              prometheus
              grafana
              process-compose
              # The cluster profile's load balancer (process-compose.cluster.yaml).
              haproxy
              curl
              jq
            ]
            # setpriv: the PostgreSQL scripts run it as the `postgres` user when
            # you are root (scripts/lib/tools.sh, pg_user_setup); Linux only.
            ++ lib.optionals stdenv.hostPlatform.isLinux [ util-linux ];

          shellHook = ''
            # Grafana reads <homepath>/conf/defaults.ini; scripts/stack/grafana passes this as --homepath.
            export GRAFANA_HOME=${pkgs.grafana}/share/grafana
            # process-compose's API defaults to port 8080, which user-service uses.
            export PC_PORT_NUM=8090
            export PC_ADDRESS=127.0.0.1
            export RUST_SRC_PATH=${pkgs.rustPlatform.rustLibSrc}
          '';
        };
      });

      # `nixfmt` is the RFC-style formatter on this pin (the `nixfmt-rfc-style` alias is deprecated).
      formatter = forAllSystems (pkgs: pkgs.nixfmt);
    };
}
