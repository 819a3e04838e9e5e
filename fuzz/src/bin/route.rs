//! AFL++ entry point of the `route` target (see `kmsgate_fuzz::route`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        kmsgate_fuzz::route::fuzz(data);
    });
}
