//! Recorded WSM traces replayed through the real bh; each trace under
//! `tests/data/` has its expected summary beside it (`.expected`).
//! `BESSER_UPDATE_EXPECTED=1` rewrites the expected files.

use std::path::Path;

use bes2600_sim::replay;

fn check(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let text = std::fs::read_to_string(dir.join(format!("{name}.wsmtrace"))).unwrap();
    let entries = replay::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let got = replay::replay(&entries, 8);
    let exp_path = dir.join(format!("{name}.expected"));
    if std::env::var_os("BESSER_UPDATE_EXPECTED").is_some() {
        std::fs::write(&exp_path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&exp_path).unwrap_or_default();
    assert_eq!(
        got,
        want,
        "replay of {name} differs from {}",
        exp_path.display()
    );
}

#[test]
fn session_trace() {
    check("session");
}

#[test]
fn bad_lines_say_where_and_what() {
    let e = replay::parse("0 rx 0800\n").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.to_string().contains("bad WSM message"), "{e}");
    let e = replay::parse("# ok\n5 rx 04000008\n3 rx 04000008\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "trace line 3: time goes backwards (3 ms after 5 ms)"
    );
    let e = replay::parse("1 up 04000008\n").unwrap_err();
    assert!(e.what.contains("expected direction"), "{e}");
    let e = replay::parse("1 rx 0400zz08\n").unwrap_err();
    assert!(e.what.contains("not a hex byte"), "{e}");
}
