//! Cache keys and the incremental patch plan.
//!
//! Two keys per image: the **tree key** (source, toolchain, board, flavour)
//! names what a build tree can be reused for at all — when it changes, the
//! tree is wiped (modules must be built by the rustc that built the kernel);
//! the **build key** adds the patches and fragments — when only it changes,
//! `make` runs again in the same tree and rebuilds what those touched.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::sha256_hex;

/// Everything that goes into one image's build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheInputs {
    pub board: String,
    pub flavour: String,
    pub source_sha256: String,
    /// `(name, sha256)` in series order.
    pub patches: Vec<(String, String)>,
    /// `(path, sha256)` in merge order.
    pub fragments: Vec<(String, String)>,
    /// Tool name -> version line.
    pub toolchain: BTreeMap<String, String>,
    /// Extra `make` variables of the kernel build (e.g. `CLIPPY=1`): a
    /// change rebuilds what they touch in the same tree.
    pub make_flags: Vec<String>,
}

/// Bump when the build recipe itself changes in a way that needs a cold tree.
pub const RECIPE_VERSION: u32 = 1;

#[derive(Serialize)]
struct TreeKey<'a> {
    recipe: u32,
    board: &'a str,
    flavour: &'a str,
    source_sha256: &'a str,
    toolchain: &'a BTreeMap<String, String>,
}

impl CacheInputs {
    pub fn tree_key(&self) -> String {
        let k = TreeKey {
            recipe: RECIPE_VERSION,
            board: &self.board,
            flavour: &self.flavour,
            source_sha256: &self.source_sha256,
            toolchain: &self.toolchain,
        };
        sha256_hex(&serde_json::to_vec(&k).expect("plain data serialises"))
    }

    pub fn build_key(&self) -> String {
        let all = (RECIPE_VERSION, self);
        sha256_hex(&serde_json::to_vec(&all).expect("plain data serialises"))
    }
}

/// How to get a source tree from the series it has applied to the one wanted:
/// keep the common prefix, revert the rest of what is applied (last first),
/// apply the rest of what is wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesPlan {
    /// Indices into `applied`, in the order to revert them.
    pub revert: Vec<usize>,
    /// Indices into `wanted`, in the order to apply them.
    pub apply: Vec<usize>,
}

/// Plans the change from `applied` to `wanted`, both `(name, sha256)` in order.
pub fn plan_series(applied: &[(String, String)], wanted: &[(String, String)]) -> SeriesPlan {
    let common = applied
        .iter()
        .zip(wanted)
        .take_while(|(a, w)| a == w)
        .count();
    SeriesPlan {
        revert: (common..applied.len()).rev().collect(),
        apply: (common..wanted.len()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> CacheInputs {
        CacheInputs {
            board: "qemu-x86_64".into(),
            flavour: "release".into(),
            source_sha256: "aa".into(),
            patches: vec![("0001-a.patch".into(), "11".into())],
            fragments: vec![("common.config".into(), "22".into())],
            toolchain: [("rustc".to_string(), "rustc 1.95.0".to_string())].into(),
            make_flags: vec!["CLIPPY=1".into()],
        }
    }

    #[test]
    fn keys_are_stable_hex() {
        let a = inputs();
        assert_eq!(a.build_key(), inputs().build_key());
        assert_eq!(a.build_key().len(), 64);
        assert_ne!(a.build_key(), a.tree_key());
    }

    #[test]
    fn a_patch_change_keeps_the_tree_but_rebuilds() {
        let a = inputs();
        let mut b = inputs();
        b.patches[0].1 = "12".into();
        assert_eq!(a.tree_key(), b.tree_key());
        assert_ne!(a.build_key(), b.build_key());
        let mut c = inputs();
        c.fragments[0].1 = "23".into();
        assert_eq!(a.tree_key(), c.tree_key());
        assert_ne!(a.build_key(), c.build_key());
        let mut d = inputs();
        d.make_flags.clear();
        assert_eq!(a.tree_key(), d.tree_key(), "make flags rebuild in place");
        assert_ne!(a.build_key(), d.build_key());
    }

    #[test]
    fn a_toolchain_source_or_flavour_change_needs_a_new_tree() {
        let a = inputs();
        let mut b = inputs();
        b.toolchain.insert("rustc".into(), "rustc 1.96.0".into());
        assert_ne!(a.tree_key(), b.tree_key());
        let mut c = inputs();
        c.source_sha256 = "ab".into();
        assert_ne!(a.tree_key(), c.tree_key());
        let mut d = inputs();
        d.flavour = "prove-locking".into();
        assert_ne!(a.tree_key(), d.tree_key());
    }

    fn s(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn series_plan_keeps_the_common_prefix() {
        let applied = s(&[("1", "a"), ("2", "b"), ("3", "c")]);
        let wanted = s(&[("1", "a"), ("2", "B"), ("3", "c"), ("4", "d")]);
        assert_eq!(
            plan_series(&applied, &wanted),
            SeriesPlan {
                revert: vec![2, 1],
                apply: vec![1, 2, 3]
            }
        );
        assert_eq!(
            plan_series(&wanted, &wanted),
            SeriesPlan {
                revert: vec![],
                apply: vec![]
            }
        );
        assert_eq!(plan_series(&[], &wanted).apply, vec![0, 1, 2, 3]);
    }
}
