use super::*;

#[test]
fn defaults_are_valid() {
    Config::default().validate().unwrap();
}

#[test]
fn upstream_max_connections_must_be_at_least_one() {
    let mut config = Config::default();
    config.upstream.max_connections = 0;
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("upstream.max_connections"), "{err}");
}
