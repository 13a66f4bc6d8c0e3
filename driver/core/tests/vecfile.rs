//! Reader of `tests/data/*.vec` (golden vectors), shared by the core's and
//! the simulator's vector tests (`#[path]`-included; test code only).
#![allow(dead_code)]

use std::collections::BTreeMap;

/// One vector: its bytes (`None` = don't care), CMD53 arguments, citation.
#[derive(Debug, Default, Clone)]
pub struct Vector {
    pub bytes: Vec<Option<u8>>,
    pub args: Vec<u32>,
    pub cite: String,
}

impl Vector {
    /// The bytes with don't-care as 0.
    pub fn zeroed(&self) -> Vec<u8> {
        self.bytes.iter().map(|b| b.unwrap_or(0)).collect()
    }
    /// Does `got` match every byte that is not don't-care?
    pub fn matches(&self, got: &[u8]) -> Result<(), String> {
        if got.len() != self.bytes.len() {
            return Err(format!("length {} != {}", got.len(), self.bytes.len()));
        }
        for (i, (w, g)) in self.bytes.iter().zip(got).enumerate() {
            if let Some(w) = w {
                if w != g {
                    return Err(format!("byte {i:#x}: got {g:#04x}, want {w:#04x}"));
                }
            }
        }
        Ok(())
    }
}

/// Parses a vector file; errors say line and what.
pub fn parse(text: &str) -> Result<BTreeMap<String, Vector>, String> {
    let mut out = BTreeMap::new();
    let mut cur: Option<(String, Vector)> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |what: &str| format!("line {}: {what}", n + 1);
        if let Some(name) = line.strip_prefix("== ") {
            if let Some((k, v)) = cur.take() {
                out.insert(k, v);
            }
            cur = Some((name.trim().to_string(), Vector::default()));
            continue;
        }
        let (_, v) = cur.as_mut().ok_or_else(|| at("field outside a vector"))?;
        let (key, val) = line
            .split_once(':')
            .ok_or_else(|| at("expected key: value"))?;
        let val = val.trim();
        match key {
            "cite" => v.cite = val.to_string(),
            "note" => {}
            "arg" => v.args.push(
                u32::from_str_radix(val.trim_start_matches("0x"), 16)
                    .map_err(|e| at(&format!("bad arg {val}: {e}")))?,
            ),
            "hex" => {
                for t in val.split_whitespace() {
                    v.bytes.push(if t == "xx" {
                        None
                    } else {
                        Some(
                            u8::from_str_radix(t, 16)
                                .map_err(|e| at(&format!("bad byte {t}: {e}")))?,
                        )
                    });
                }
            }
            "len" | "pad" => {
                let n: usize = val
                    .parse()
                    .map_err(|e| at(&format!("bad {key} {val}: {e}")))?;
                if n < v.bytes.len() {
                    return Err(at("total shorter than the hex"));
                }
                v.bytes.resize(n, if key == "len" { Some(0) } else { None });
            }
            other => return Err(at(&format!("unknown key {other}"))),
        }
    }
    if let Some((k, v)) = cur {
        out.insert(k, v);
    }
    for (k, v) in &out {
        if v.cite.is_empty() {
            return Err(format!("vector {k} has no cite"));
        }
    }
    Ok(out)
}

pub fn load() -> BTreeMap<String, Vector> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/data/bes2600.vec"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}
