//! Compile-fail proofs that credit/sequence state has one writer: the bh.
//! Each file in `tests/ui/` is a way a second writer could be written (the
//! Patch C v1 relay, an IRQ handler, a shared reference) and must not build.

#[test]
fn bh_only_fields_are_unreachable_from_other_contexts() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
