//! Applying real patches with GNU patch(1) to a fixture tree.

use std::path::Path;

use besser_image::apply::{apply_patch, Direction, PatchError};
use besser_image::series::make_patch;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/apply")
            .join(name),
    )
    .unwrap()
}

fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/apply/tree/numbers.txt"),
        d.path().join("numbers.txt"),
    )
    .unwrap();
    d
}

#[test]
fn a_good_patch_applies_and_reverts() {
    let d = tree();
    let before = std::fs::read_to_string(d.path().join("numbers.txt")).unwrap();
    let p = make_patch("0001-good.patch", fixture("0001-good.patch")).unwrap();
    apply_patch(d.path(), "fixture-tree", &p, Direction::Apply).unwrap();
    let after = std::fs::read_to_string(d.path().join("numbers.txt")).unwrap();
    assert!(after.contains("two and a half\n"));
    // Applying twice is refused (already applied), and says so.
    let e = apply_patch(d.path(), "fixture-tree", &p, Direction::Apply).unwrap_err();
    assert!(
        e.to_string()
            .contains("Reversed (or previously applied) patch detected"),
        "{e}"
    );
    apply_patch(d.path(), "fixture-tree", &p, Direction::Revert).unwrap();
    assert_eq!(
        std::fs::read_to_string(d.path().join("numbers.txt")).unwrap(),
        before
    );
}

#[test]
fn a_failing_patch_names_patch_and_hunk_and_leaves_the_tree_alone() {
    let d = tree();
    let before = std::fs::read_to_string(d.path().join("numbers.txt")).unwrap();
    let p = make_patch("0002-bad.patch", fixture("0002-bad.patch")).unwrap();
    let e = apply_patch(d.path(), "fixture-tree", &p, Direction::Apply).unwrap_err();
    assert!(matches!(e, PatchError::DoesNotApply(_)));
    assert_eq!(e.to_string(), fixture("expected-error.txt"));
    // The dry run caught it: hunk #1 was not applied either.
    assert_eq!(
        std::fs::read_to_string(d.path().join("numbers.txt")).unwrap(),
        before
    );
}
