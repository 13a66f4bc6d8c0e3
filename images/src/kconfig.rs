//! Kconfig fragments: parsing, merging in order, and checking that what was
//! asked for survived `olddefconfig`.
//!
//! A fragment line is `CONFIG_FOO=value` or `# CONFIG_FOO is not set`; blank
//! lines and other `#` comments are ignored. Anything else is an error with
//! the file and line, so a typo never silently does nothing.

use std::collections::BTreeMap;
use std::fmt;

/// A Kconfig value as written in a `.config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `=y`
    Yes,
    /// `=m`
    Module,
    /// `# CONFIG_FOO is not set` (or absent from a `.config`).
    No,
    /// A string or number, kept exactly as written (strings with quotes).
    Raw(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Yes => f.write_str("y"),
            Value::Module => f.write_str("m"),
            Value::No => f.write_str("is not set"),
            Value::Raw(s) => f.write_str(s),
        }
    }
}

impl Value {
    fn parse(s: &str) -> Value {
        match s {
            "y" => Value::Yes,
            "m" => Value::Module,
            "n" => Value::No,
            other => Value::Raw(other.to_string()),
        }
    }

    /// Whether `got` (from the final `.config`) satisfies a request for `self`.
    /// A module asked for and built in is fine (a dependency forced it).
    pub fn satisfied_by(&self, got: &Value) -> bool {
        match (self, got) {
            (Value::Module, Value::Yes) => true,
            (a, b) => a == b,
        }
    }
}

/// One `CONFIG_` assignment and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Without the `CONFIG_` prefix.
    pub name: String,
    pub value: Value,
    /// `file:line` of the assignment.
    pub origin: String,
}

/// A parsed fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub path: String,
    pub settings: Vec<Setting>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    #[error("{path}:{line}: not a Kconfig assignment: `{text}` (expected `CONFIG_FOO=value` or `# CONFIG_FOO is not set`)")]
    BadLine {
        path: String,
        line: usize,
        text: String,
    },
    #[error("{path}:{line}: CONFIG_{name} set twice in one fragment (first at line {first})")]
    Duplicate {
        path: String,
        line: usize,
        name: String,
        first: usize,
    },
}

fn valid_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn valid_value(s: &str) -> bool {
    if s.starts_with('"') {
        s.len() >= 2 && s.ends_with('"')
    } else {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }
}

/// Parses one line of a `.config`/fragment: `Some((name, value))` for an
/// assignment, `None` for a blank line or comment, `Err(())` for anything else.
fn parse_line(line: &str) -> Result<Option<(String, Value)>, ()> {
    let t = line.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if let Some(rest) = t.strip_prefix('#') {
        let rest = rest.trim();
        if let Some(sym) = rest
            .strip_prefix("CONFIG_")
            .and_then(|r| r.strip_suffix(" is not set"))
        {
            if valid_symbol(sym) {
                return Ok(Some((sym.to_string(), Value::No)));
            }
        }
        return Ok(None);
    }
    let (lhs, rhs) = t.split_once('=').ok_or(())?;
    let sym = lhs.strip_prefix("CONFIG_").ok_or(())?;
    if !valid_symbol(sym) || !valid_value(rhs) {
        return Err(());
    }
    Ok(Some((sym.to_string(), Value::parse(rhs))))
}

/// Parses a fragment; `path` is only used in messages and origins.
pub fn parse_fragment(path: &str, text: &str) -> Result<Fragment, FragmentError> {
    let mut settings: Vec<Setting> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        match parse_line(line) {
            Ok(None) => {}
            Ok(Some((name, value))) => {
                if let Some(&first) = seen.get(&name) {
                    return Err(FragmentError::Duplicate {
                        path: path.to_string(),
                        line: lineno,
                        name,
                        first,
                    });
                }
                seen.insert(name.clone(), lineno);
                settings.push(Setting {
                    name,
                    value,
                    origin: format!("{path}:{lineno}"),
                });
            }
            Err(()) => {
                return Err(FragmentError::BadLine {
                    path: path.to_string(),
                    line: lineno,
                    text: line.trim().to_string(),
                })
            }
        }
    }
    Ok(Fragment {
        path: path.to_string(),
        settings,
    })
}

/// Fragments merged in order: a later fragment overrides an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Merged {
    /// In first-mention order.
    pub settings: Vec<Setting>,
    /// `(symbol, overridden origin, overriding origin)`, for the build log.
    pub overrides: Vec<(String, String, String)>,
}

pub fn merge(fragments: &[Fragment]) -> Merged {
    let mut m = Merged::default();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for f in fragments {
        for s in &f.settings {
            match index.get(&s.name) {
                Some(&i) => {
                    let old = &mut m.settings[i];
                    m.overrides
                        .push((s.name.clone(), old.origin.clone(), s.origin.clone()));
                    *old = s.clone();
                }
                None => {
                    index.insert(s.name.clone(), m.settings.len());
                    m.settings.push(s.clone());
                }
            }
        }
    }
    m
}

impl Merged {
    /// The merged fragment as a file for `KCONFIG_ALLCONFIG`.
    pub fn render(&self) -> String {
        let mut out =
            String::from("# Generated by besser from kernel-patches/config; do not edit.\n");
        for s in &self.settings {
            match &s.value {
                Value::No => out.push_str(&format!("# CONFIG_{} is not set\n", s.name)),
                v => out.push_str(&format!("CONFIG_{}={}\n", s.name, v)),
            }
        }
        out
    }
}

/// A final `.config` as a map from symbol (without `CONFIG_`) to value.
/// Lines that are not assignments are ignored (it is generated by Kconfig).
pub fn parse_dot_config(text: &str) -> BTreeMap<String, Value> {
    text.lines()
        .filter_map(|l| parse_line(l).ok().flatten())
        .collect()
}

/// One requested option the final `.config` does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub name: String,
    pub wanted: Value,
    pub got: Value,
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DroppedOptions(pub Vec<Dropped>);

impl fmt::Display for DroppedOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} fragment option(s) did not survive olddefconfig (a dependency is missing or an option conflicts):",
            self.0.len()
        )?;
        for d in &self.0 {
            let want = match &d.wanted {
                Value::No => format!("# CONFIG_{} is not set", d.name),
                v => format!("CONFIG_{}={}", d.name, v),
            };
            let got = match &d.got {
                Value::No => "not set".to_string(),
                v => format!("={v}"),
            };
            writeln!(f, "  {want}  (from {}) -> final .config: {got}", d.origin)?;
        }
        Ok(())
    }
}

/// Checks that every merged setting survived into the final `.config`.
pub fn check_survived(merged: &Merged, final_config: &str) -> Result<(), DroppedOptions> {
    let have = parse_dot_config(final_config);
    let dropped: Vec<Dropped> = merged
        .settings
        .iter()
        .filter_map(|s| {
            let got = have.get(&s.name).cloned().unwrap_or(Value::No);
            (!s.value.satisfied_by(&got)).then(|| Dropped {
                name: s.name.clone(),
                wanted: s.value.clone(),
                got,
                origin: s.origin.clone(),
            })
        })
        .collect();
    if dropped.is_empty() {
        Ok(())
    } else {
        Err(DroppedOptions(dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_assignments_and_not_set() {
        let f = parse_fragment(
            "common.config",
            "# comment\n\nCONFIG_RUST=y\n# CONFIG_MODVERSIONS is not set\nCONFIG_LOCALVERSION=\"-besser\"\nCONFIG_NET_SCH_TBF=m\nCONFIG_HZ=250\n",
        )
        .unwrap();
        let got: Vec<_> = f
            .settings
            .iter()
            .map(|s| (s.name.as_str(), s.value.to_string(), s.origin.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("RUST", "y".to_string(), "common.config:3"),
                ("MODVERSIONS", "is not set".to_string(), "common.config:4"),
                ("LOCALVERSION", "\"-besser\"".to_string(), "common.config:5"),
                ("NET_SCH_TBF", "m".to_string(), "common.config:6"),
                ("HZ", "250".to_string(), "common.config:7"),
            ]
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = parse_fragment("board/x.config", "CONFIG_A=y\nRUST=y\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "board/x.config:2: not a Kconfig assignment: `RUST=y` (expected `CONFIG_FOO=value` or `# CONFIG_FOO is not set`)"
        );
        let e = parse_fragment("f", "CONFIG_lower=y\n").unwrap_err();
        assert!(matches!(e, FragmentError::BadLine { line: 1, .. }));
        let e = parse_fragment("f", "CONFIG_A=\"unterminated\n").unwrap_err();
        assert!(matches!(e, FragmentError::BadLine { line: 1, .. }));
        let e = parse_fragment("f", "CONFIG_A=y\n# x\nCONFIG_A=m\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f:3: CONFIG_A set twice in one fragment (first at line 1)"
        );
    }

    #[test]
    fn later_fragments_override_earlier_ones() {
        let a = parse_fragment("common.config", "CONFIG_A=y\nCONFIG_B=m\n").unwrap();
        let b = parse_fragment("flavour/x.config", "# CONFIG_A is not set\nCONFIG_C=y\n").unwrap();
        let m = merge(&[a, b]);
        assert_eq!(
            m.render(),
            "# Generated by besser from kernel-patches/config; do not edit.\n\
             # CONFIG_A is not set\nCONFIG_B=m\nCONFIG_C=y\n"
        );
        assert_eq!(
            m.overrides,
            [(
                "A".to_string(),
                "common.config:1".to_string(),
                "flavour/x.config:1".to_string()
            )]
        );
    }

    #[test]
    fn dropped_options_are_listed_with_their_origin() {
        let f = parse_fragment(
            "common.config",
            "CONFIG_RUST=y\nCONFIG_NET=y\n# CONFIG_MODVERSIONS is not set\nCONFIG_TBF=m\nCONFIG_LOCALVERSION=\"-b\"\n",
        )
        .unwrap();
        let m = merge(&[f]);
        // RUST dropped (absent), MODVERSIONS forced on, TBF built in (fine),
        // LOCALVERSION changed.
        let final_config = "CONFIG_NET=y\n# CONFIG_RUST is not set\nCONFIG_MODVERSIONS=y\nCONFIG_TBF=y\nCONFIG_LOCALVERSION=\"\"\n";
        let e = check_survived(&m, final_config).unwrap_err();
        assert_eq!(
            e.to_string(),
            "3 fragment option(s) did not survive olddefconfig (a dependency is missing or an option conflicts):\n\
             \x20 CONFIG_RUST=y  (from common.config:1) -> final .config: not set\n\
             \x20 # CONFIG_MODVERSIONS is not set  (from common.config:3) -> final .config: =y\n\
             \x20 CONFIG_LOCALVERSION=\"-b\"  (from common.config:5) -> final .config: =\"\"\n"
        );
        let ok = "CONFIG_NET=y\nCONFIG_RUST=y\nCONFIG_TBF=m\nCONFIG_LOCALVERSION=\"-b\"\n";
        check_survived(&m, ok).unwrap();
    }
}
