//! AFL++ entry point of the `token` target (see `kmsgate_fuzz::token`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        kmsgate_fuzz::token::fuzz(data);
    });
}
