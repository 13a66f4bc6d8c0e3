//! The repository's own `kernel-patches/`: the series loads, every patch has
//! its header, and every board x flavour's fragments parse and merge.

use std::path::{Path, PathBuf};

use besser_image::board::fragment_order;
use besser_image::kconfig::{merge, parse_fragment, Value};
use besser_image::series::load_series;
use besser_image::{Board, Flavour};

fn patches_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-patches")
}

#[test]
fn the_series_loads() {
    let patches = load_series(&patches_dir()).unwrap();
    assert!(!patches.is_empty());
    assert!(patches
        .iter()
        .any(|p| p.text.contains("+#include <net/mac80211.h>")));
}

#[test]
fn every_image_asks_for_rust_and_its_flavour() {
    for b in Board::ALL {
        for f in Flavour::ALL {
            let frags: Vec<_> = fragment_order(b, f)
                .iter()
                .map(|p| {
                    let text = std::fs::read_to_string(patches_dir().join("config").join(p))
                        .unwrap_or_else(|e| panic!("{p}: {e}"));
                    parse_fragment(p, &text).unwrap()
                })
                .collect();
            let m = merge(&frags);
            let get = |n: &str| {
                m.settings
                    .iter()
                    .find(|s| s.name == n)
                    .map(|s| s.value.clone())
            };
            assert_eq!(get("RUST"), Some(Value::Yes), "{b}-{f}");
            assert_eq!(get("MODVERSIONS"), Some(Value::No), "{b}-{f}");
            assert_eq!(get("IKCONFIG_PROC"), Some(Value::Yes), "{b}-{f}");
            let lock = if f == Flavour::ProveLocking {
                Value::Yes
            } else {
                Value::No
            };
            assert_eq!(get("PROVE_LOCKING"), Some(lock), "{b}-{f}");
        }
    }
}
