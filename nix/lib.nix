# The pure half of besser's packaging: turns `kernel-patches/` and the board
# table into plain Nix values. It uses only `builtins` (no nixpkgs), so Debian's
# nix 2.8 evaluates it offline, and `cargo xtask packaging check` compares what
# it yields with what `cargo xtask image` computes for every board x flavour.
#
# Nothing here returns a path, only names relative to the repository: the
# flake turns names into paths, and tests evaluate with `--store dummy://`.
{ root ? ./.. }:
let
  inherit (builtins)
    attrNames concatMap elemAt filter foldl' fromJSON genList head isString
    length match pathExists readDir readFile sort split
    stringLength substring throw;

  table = fromJSON (readFile (root + "/nix/boards.json"));

  # Lines of a file, numbered from 1: [ { n = 1; text = "..."; } ... ].
  numberedLines = text:
    let ls = filter isString (split "\n" text);
    in genList (i: { n = i + 1; text = elemAt ls i; }) (length ls);

  trim = s:
    let m = match "[[:space:]]*(.*[^[:space:]])[[:space:]]*" s;
    in if m == null then "" else head m;

  hasSuffix = suffix: s:
    let ls = stringLength s; lx = stringLength suffix;
    in ls >= lx && substring (ls - lx) lx s == suffix;

  # kernel-patches/series: one `.patch` or directory per line, `#` comments
  # (images/src/series.rs, parse_series and load_series).
  seriesDir = root + "/kernel-patches";
  seriesEntries = filter (e: e.entry != "") (map
    (l: { inherit (l) n; entry = trim (head (split "#" l.text)); })
    (numberedLines (readFile (seriesDir + "/series"))));

  expandEntry = e:
    let
      p = seriesDir + "/${e.entry}";
      where = "kernel-patches/series:${toString e.n}";
    in
    if !(pathExists p) then throw "${where}: `${e.entry}` does not exist"
    else if hasSuffix ".patch" e.entry then [ e.entry ]
    else
      let
        kids = readDir p;
        patches = sort (a: b: a < b)
          (filter (k: kids.${k} == "regular" && hasSuffix ".patch" k) (attrNames kids));
      in
      if kids == { } || patches == [ ] then
        throw "${where}: `${e.entry}` is neither a .patch file nor a directory of them"
      else map (k: "${e.entry}/${k}") patches;

  patches =
    let names = concatMap expandEntry seriesEntries;
    in foldl'
      (seen: n: if builtins.elem n seen
        then throw "kernel-patches/series: `${n}` is listed twice"
        else seen ++ [ n ])
      [ ]
      names;

  # A Kconfig fragment: `CONFIG_FOO=value` or `# CONFIG_FOO is not set`;
  # blank lines and other comments are skipped, anything else is an error
  # naming the file and line (images/src/kconfig.rs, parse_fragment).
  parseFragment = rel:
    let
      file = "kernel-patches/config/${rel}";
      one = l:
        let
          t = trim l.text;
          set = match "CONFIG_([A-Za-z0-9_]+)=(.*)" t;
          unset = match "#[[:space:]]*CONFIG_([A-Za-z0-9_]+) is not set" t;
        in
        if set != null then [{ name = head set; value = elemAt set 1; }]
        else if unset != null then [{ name = head unset; value = "n"; }]
        else if t == "" || substring 0 1 t == "#" then [ ]
        else throw "${file}:${toString l.n}: not a Kconfig assignment: `${t}`";
      settings = concatMap one (numberedLines (readFile (root + "/${file}")));
    in
    foldl'
      (seen: s: if seen ? ${s.name}
        then throw "${file}: CONFIG_${s.name} set twice in one fragment"
        else seen // { ${s.name} = s.value; })
      { }
      settings;

  fragmentsFor = board: flavour:
    [ "common.config" ] ++ table.boards.${board}.fragments ++ [ table.flavours.${flavour}.fragment ];

  # Later fragments win, as in `merge_config.sh` and kconfig::merge.
  configFor = board: flavour:
    foldl' (acc: f: acc // parseFragment f) { } (fragmentsFor board flavour);

  images = concatMap
    (board: map
      (flavour: {
        name = "${board}-${flavour}";
        inherit board flavour;
        inherit (table.boards.${board}) system kernelArch;
      })
      (attrNames table.flavours))
    (attrNames table.boards);
in
{
  inherit table patches parseFragment fragmentsFor configFor images;
  boards = attrNames table.boards;
  flavours = attrNames table.flavours;
  version = table.version;

  # Everything a check compares, as JSON-able data.
  summary = {
    inherit patches;
    images = map
      (i: i // {
        fragments = fragmentsFor i.board i.flavour;
        config = configFor i.board i.flavour;
      })
      images;
  };
}
