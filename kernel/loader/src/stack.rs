//! The initial user stack of a new program, as Linux builds it: `argc`, the `argv` and
//! `envp` pointer arrays (NULL-terminated), the auxiliary vector, and above them the
//! strings and the 16 random bytes AT_RANDOM points at.

use alloc::vec::Vec;

/// Auxiliary-vector keys the builder adds itself.
pub mod at {
    /// End of the vector.
    pub const NULL: u64 = 0;
    /// Platform string ("x86_64").
    pub const PLATFORM: u64 = 15;
    /// 16 random bytes.
    pub const RANDOM: u64 = 25;
    /// The executed file's name.
    pub const EXECFN: u64 = 31;
}

/// The bytes to place at `sp` (they end at most 16 bytes below the stack top).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialStack {
    /// Initial stack pointer (16-byte aligned, pointing at `argc`).
    pub sp: u64,
    /// Memory contents from `sp` upwards.
    pub bytes: Vec<u8>,
    /// Where the argument strings lie, `[start, end)`, each with its NUL.
    pub args: (u64, u64),
}

/// What goes on the stack.
pub struct StackSpec<'a> {
    /// Stack top (exclusive).
    pub top: u64,
    /// Arguments.
    pub argv: &'a [&'a [u8]],
    /// Environment.
    pub envp: &'a [&'a [u8]],
    /// AT_EXECFN string.
    pub execfn: &'a [u8],
    /// AT_RANDOM bytes.
    pub random: [u8; 16],
    /// The other auxv entries, without AT_NULL.
    pub auxv: &'a [(u64, u64)],
}

/// Lays out the stack; `None` if it does not fit below `top` (absurd sizes).
pub fn build(spec: &StackSpec) -> Option<InitialStack> {
    let mut blob: Vec<u8> = Vec::new();
    let mut offsets = Vec::with_capacity(spec.argv.len() + spec.envp.len());
    let mut args_len = 0;
    for (i, s) in spec.argv.iter().chain(spec.envp.iter()).enumerate() {
        offsets.push(blob.len() as u64);
        blob.extend_from_slice(s);
        blob.push(0);
        if i + 1 == spec.argv.len() {
            args_len = blob.len() as u64;
        }
    }
    let execfn = blob.len() as u64;
    blob.extend_from_slice(spec.execfn);
    blob.push(0);
    let platform = blob.len() as u64;
    blob.extend_from_slice(b"x86_64\0");
    let random = blob.len() as u64;
    blob.extend_from_slice(&spec.random);
    let strings = spec.top.checked_sub(16)?.checked_sub(blob.len() as u64)? & !15;

    let mut words: Vec<u64> =
        Vec::with_capacity(spec.argv.len() + spec.envp.len() + 2 * spec.auxv.len() + 12);
    words.push(spec.argv.len() as u64);
    let (argv_offsets, envp_offsets) = offsets.split_at(spec.argv.len());
    words.extend(argv_offsets.iter().map(|o| strings + o));
    words.push(0);
    words.extend(envp_offsets.iter().map(|o| strings + o));
    words.push(0);
    for &(k, v) in spec.auxv {
        words.extend([k, v]);
    }
    words.extend([
        at::RANDOM,
        strings + random,
        at::PLATFORM,
        strings + platform,
        at::EXECFN,
        strings + execfn,
        at::NULL,
        0,
    ]);
    let sp = strings.checked_sub(words.len() as u64 * 8)? & !15;

    let mut bytes = Vec::with_capacity((spec.top - sp) as usize);
    for w in &words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    bytes.resize((strings - sp) as usize, 0);
    bytes.extend_from_slice(&blob);
    Some(InitialStack {
        sp,
        bytes,
        args: (strings, strings + args_len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(img: &InitialStack, addr: u64) -> u64 {
        let at = (addr - img.sp) as usize;
        u64::from_le_bytes(img.bytes[at..at + 8].try_into().unwrap())
    }

    fn cstr(img: &InitialStack, addr: u64) -> &[u8] {
        let at = (addr - img.sp) as usize;
        let len = img.bytes[at..].iter().position(|&b| b == 0).unwrap();
        &img.bytes[at..at + len]
    }

    #[test]
    fn linux_layout_reads_back() {
        let top = 0x7fff_0000_0000;
        let spec = StackSpec {
            top,
            argv: &[b"/bin/hello", b"7"],
            envp: &[b"HOME=/"],
            execfn: b"/bin/hello",
            random: [9; 16],
            auxv: &[(6, 4096), (9, 0x400100)],
        };
        let img = build(&spec).unwrap();
        assert_eq!(img.sp % 16, 0);
        assert!(img.sp + img.bytes.len() as u64 <= top - 16);
        assert_eq!(word(&img, img.sp), 2);
        assert_eq!(cstr(&img, word(&img, img.sp + 8)), b"/bin/hello");
        assert_eq!(cstr(&img, word(&img, img.sp + 16)), b"7");
        assert_eq!(word(&img, img.sp + 24), 0);
        assert_eq!(cstr(&img, word(&img, img.sp + 32)), b"HOME=/");
        assert_eq!(word(&img, img.sp + 40), 0);
        // auxv: the given pairs, then RANDOM, PLATFORM, EXECFN, NULL.
        let mut aux = Vec::new();
        let mut at = img.sp + 48;
        loop {
            let (k, v) = (word(&img, at), word(&img, at + 8));
            aux.push((k, v));
            at += 16;
            if k == at::NULL {
                break;
            }
        }
        assert_eq!(&aux[..2], &[(6, 4096), (9, 0x400100)]);
        let random = aux.iter().find(|(k, _)| *k == at::RANDOM).unwrap().1;
        let at_rand = (random - img.sp) as usize;
        assert_eq!(&img.bytes[at_rand..at_rand + 16], &[9; 16]);
        assert_eq!(
            cstr(
                &img,
                aux.iter().find(|(k, _)| *k == at::PLATFORM).unwrap().1
            ),
            b"x86_64"
        );
        assert_eq!(
            cstr(&img, aux.iter().find(|(k, _)| *k == at::EXECFN).unwrap().1),
            b"/bin/hello"
        );
        // The argument strings, NUL after each, end where the environment starts.
        let (start, end) = img.args;
        let at = (start - img.sp) as usize..(end - img.sp) as usize;
        assert_eq!(&img.bytes[at], b"/bin/hello\07\0");
        assert_eq!(end, word(&img, img.sp + 32));
    }

    #[test]
    fn no_room_is_none() {
        let spec = StackSpec {
            top: 64,
            argv: &[b"a-long-argument-string"],
            envp: &[],
            execfn: b"x",
            random: [0; 16],
            auxv: &[],
        };
        assert_eq!(build(&spec), None);
    }
}
