//! AFL++ entry point of the `body` target (see `kmsgate_fuzz::body`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        kmsgate_fuzz::body::fuzz(data);
    });
}
