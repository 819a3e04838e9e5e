//! AFL++ entry point of the `proxy_protocol` target (see `kmsgate_fuzz::proxy_protocol`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        kmsgate_fuzz::proxy_protocol::fuzz(data);
    });
}
