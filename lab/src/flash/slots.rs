//! A/B slots in RAUC's U-Boot convention (RAUC docs, "Integration" →
//! "U-Boot"; `contrib/uboot.sh` there): `BOOT_ORDER` lists the slots in the
//! order the boot script tries them, `BOOT_<slot>_LEFT` counts the tries a
//! slot has left. The boot script (`images/boot/besser-ab.cmd`) boots the
//! first slot of the order with tries left, decrementing its count and
//! saving the environment first; userspace resets the count of a slot that
//! proved good (`rauc status mark-good`). A slot that fails its last try
//! is skipped on the next boot: the fallback needs nobody.
//!
//! This module is the host's reading and writing of those variables; the
//! boot script is the one that acts on them at boot.

use std::fmt;

use super::env::Env;

/// Tries a slot marked good gets (RAUC's default `BOOT_<slot>_LEFT`).
pub const GOOD_TRIES: u32 = 3;

/// A slot name: `A` or `B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }

    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    pub fn parse(s: &str) -> Option<Slot> {
        match s {
            "A" => Some(Slot::A),
            "B" => Some(Slot::B),
            _ => None,
        }
    }

    /// `BOOT_<slot>_LEFT`.
    pub fn left_var(self) -> String {
        format!("BOOT_{}_LEFT", self.name())
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The A/B variables of an environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbState {
    pub order: Vec<Slot>,
    /// Tries left per slot (`[A, B]`).
    pub left: [u32; 2],
}

/// Why an environment's A/B variables do not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbError(pub String);

impl fmt::Display for AbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AbError {}

impl AbState {
    /// The boot script's defaults for variables it does not find (RAUC's
    /// `contrib/uboot.sh`: `A B`, 3 tries each).
    pub fn defaults() -> AbState {
        AbState {
            order: vec![Slot::A, Slot::B],
            left: [GOOD_TRIES; 2],
        }
    }

    /// Reads `BOOT_ORDER` and the `BOOT_<slot>_LEFT` counters, defaulting
    /// what is absent as the boot script does.
    pub fn from_env(env: &Env) -> Result<AbState, AbError> {
        let mut st = AbState::defaults();
        if let Some(o) = env.get("BOOT_ORDER") {
            let mut order = Vec::new();
            for w in o.split_whitespace() {
                let s = Slot::parse(w).ok_or_else(|| {
                    AbError(format!(
                        "BOOT_ORDER={o:?}: {w:?} is not a slot (expected A or B)"
                    ))
                })?;
                if order.contains(&s) {
                    return Err(AbError(format!("BOOT_ORDER={o:?} names slot {s} twice")));
                }
                order.push(s);
            }
            st.order = order;
        }
        for s in Slot::ALL {
            if let Some(v) = env.get(&s.left_var()) {
                st.left[s as usize] = v.trim().parse().map_err(|_| {
                    AbError(format!("{}={v:?}: expected a count of tries", s.left_var()))
                })?;
            }
        }
        Ok(st)
    }

    /// Writes the variables into `env` (the rest of it untouched).
    pub fn apply(&self, env: &mut Env) {
        let order: Vec<&str> = self.order.iter().map(|s| s.name()).collect();
        env.set("BOOT_ORDER", &order.join(" "));
        for s in Slot::ALL {
            env.set(&s.left_var(), &self.left[s as usize].to_string());
        }
    }

    pub fn left(&self, s: Slot) -> u32 {
        self.left[s as usize]
    }

    /// The slot the next boot takes: the first of the order with tries
    /// left (`None`: the boot script resets every count and starts over).
    pub fn next_boot(&self) -> Option<Slot> {
        self.order.iter().copied().find(|&s| self.left(s) > 0)
    }

    /// `target` first in the order with `tries` tries (flash: one), the
    /// other slot after it untouched, so a failed try falls back to it.
    pub fn try_slot(&mut self, target: Slot, tries: u32) {
        self.order.retain(|&s| s != target);
        self.order.insert(0, target);
        if !self.order.contains(&target.other()) {
            self.order.push(target.other());
        }
        self.left[target as usize] = tries;
    }

    /// `slot` proved good: its count back to [`GOOD_TRIES`] (RAUC's
    /// mark-good).
    pub fn mark_good(&mut self, slot: Slot) {
        self.left[slot as usize] = GOOD_TRIES;
    }

    /// `slot` failed (flash found the device back on the other one): it
    /// goes last with no tries, the running slot first and good.
    pub fn mark_bad(&mut self, slot: Slot) {
        self.order.retain(|&s| s != slot);
        self.order.push(slot);
        self.left[slot as usize] = 0;
        self.mark_good(slot.other());
    }
}

/// The slot the running kernel was booted from, as the boot script puts it
/// on the command line (`rauc.slot=A`, RAUC's own convention).
pub fn booted_slot(cmdline: &str) -> Option<Slot> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rauc.slot="))
        .and_then(Slot::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        let mut e = Env::new();
        for (k, v) in vars {
            e.set(k, v);
        }
        e
    }

    #[test]
    fn absent_variables_read_as_the_boot_scripts_defaults() {
        assert_eq!(AbState::from_env(&Env::new()).unwrap(), AbState::defaults());
        assert_eq!(AbState::defaults().next_boot(), Some(Slot::A));
    }

    #[test]
    fn a_one_try_install_falls_back_once_its_try_is_spent() {
        let mut st = AbState::defaults();
        st.try_slot(Slot::B, 1);
        assert_eq!(st.order, [Slot::B, Slot::A]);
        assert_eq!(st.next_boot(), Some(Slot::B));
        // The boot script spends B's one try...
        st.left[Slot::B as usize] -= 1;
        // ...and if B never marks itself good, the next boot takes A.
        assert_eq!(st.next_boot(), Some(Slot::A));
        st.mark_bad(Slot::B);
        assert_eq!(st.order, [Slot::A, Slot::B]);
        assert_eq!((st.left(Slot::A), st.left(Slot::B)), (GOOD_TRIES, 0));
    }

    #[test]
    fn marking_good_restores_the_tries() {
        let mut st =
            AbState::from_env(&env(&[("BOOT_ORDER", "B A"), ("BOOT_B_LEFT", "0")])).unwrap();
        st.mark_good(Slot::B);
        assert_eq!(st.next_boot(), Some(Slot::B));
        let mut e = env(&[("bootcmd", "run distro_bootcmd")]);
        st.apply(&mut e);
        assert_eq!(e.get("BOOT_ORDER"), Some("B A"));
        assert_eq!(e.get("BOOT_B_LEFT"), Some("3"));
        assert_eq!(e.get("bootcmd"), Some("run distro_bootcmd"));
    }

    #[test]
    fn no_slot_with_tries_left_is_none() {
        let st = AbState::from_env(&env(&[("BOOT_A_LEFT", "0"), ("BOOT_B_LEFT", "0")])).unwrap();
        assert_eq!(st.next_boot(), None);
    }

    #[test]
    fn bad_variables_say_which_and_why() {
        let e = AbState::from_env(&env(&[("BOOT_ORDER", "A C")])).unwrap_err();
        assert!(e.0.contains("\"C\" is not a slot"), "{e}");
        let e = AbState::from_env(&env(&[("BOOT_ORDER", "A A")])).unwrap_err();
        assert!(e.0.contains("twice"), "{e}");
        let e = AbState::from_env(&env(&[("BOOT_B_LEFT", "x")])).unwrap_err();
        assert!(e.0.contains("BOOT_B_LEFT"), "{e}");
    }

    #[test]
    fn the_booted_slot_comes_from_the_command_line() {
        assert_eq!(
            booted_slot("console=ttyAMA0 rauc.slot=B quiet"),
            Some(Slot::B)
        );
        assert_eq!(booted_slot("console=ttyAMA0"), None);
        assert_eq!(booted_slot("rauc.slot=C"), None);
    }
}
