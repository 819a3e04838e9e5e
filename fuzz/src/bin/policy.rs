//! AFL++ entry point of the `policy` target (see `kmsgate_fuzz::policy`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        kmsgate_fuzz::policy::fuzz(data);
    });
}
