//! Stack frames of the driver's modules, read from `llvm-objdump -d`: the
//! kernel stack is 16 KiB and, without `VMAP_STACK`, an overflow corrupts
//! whatever lies next to it silently. C code gets `-Wframe-larger-than`
//! (`CONFIG_FRAME_WARN`, 2048 on 64-bit); Rust gets nothing, so the image
//! build refuses a module with a frame above [`FRAME_MAX`].

/// The largest stack frame a module function may set up (bytes), as C's
/// `CONFIG_FRAME_WARN` default for 64-bit.
pub const FRAME_MAX: u64 = 2048;

/// `(bytes, function)` for every function whose prologue reserves more than
/// `limit` bytes: `sub $N, %rsp` (x86_64) or `sub sp, sp, #N` (arm64).
pub fn frames_over(objdump: &str, limit: u64) -> Vec<(u64, String)> {
    let mut func = String::new();
    let mut out = Vec::new();
    for l in objdump.lines() {
        let t = l.trim();
        if let Some(name) = t
            .strip_suffix(">:")
            .and_then(|h| h.split_once(" <"))
            .map(|(_, n)| n)
        {
            func = name.to_string();
            continue;
        }
        let ins: Vec<&str> = t
            .split_once(':')
            .map_or(t, |(_, r)| r)
            .split_whitespace()
            .collect();
        let ins = ins.join(" ");
        let imm = if let Some(r) = ins
            .strip_prefix("subq ")
            .or_else(|| ins.strip_prefix("sub "))
        {
            let r = r.trim();
            if r.ends_with("%rsp") {
                r.strip_prefix('$')
                    .and_then(|v| v.split(',').next())
                    .and_then(parse_num)
            } else if let Some(v) = r.strip_prefix("sp, sp, #") {
                parse_num(v.split_whitespace().next().unwrap_or(""))
            } else {
                None
            }
        } else {
            None
        };
        if let Some(n) = imm.filter(|&n| n > limit) {
            out.push((n, func.clone()));
        }
    }
    out
}

fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_big_frames_on_both_architectures() {
        let x86 = "0000000000000010 <besser_chip_cmd53>:\n      10:      \tsubq\t$32872, %rsp\n\
                   0000000000000090 <small>:\n      90:      \tsubq\t$24, %rsp\n";
        assert_eq!(
            frames_over(x86, FRAME_MAX),
            vec![(32872, "besser_chip_cmd53".into())]
        );
        let arm = "0000000000000000 <f>:\n       0: \tsub\tsp, sp, #0x2010\n       4: \tsub\tsp, sp, #16\n";
        assert_eq!(frames_over(arm, FRAME_MAX), vec![(0x2010, "f".into())]);
        assert!(frames_over(x86, 40_000).is_empty());
    }
}
