//! AFL++ entry point of the `canonical` target (see `kmsgate_fuzz::canonical`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        kmsgate_fuzz::canonical::fuzz(data);
    });
}
