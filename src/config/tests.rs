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

#[test]
fn log_level_must_be_a_level_or_target_directives() {
    for good in [
        "info",
        "DEBUG",
        "off",
        "kmsgate=debug",
        "info,kmsgate::auth=trace,hyper=warn",
    ] {
        check_log_filter(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "verbose",
        "",
        "kmsgate=loud",
        "=info",
        "info,chatty",
        " warn , kmsgate=info ",
    ] {
        assert!(check_log_filter(bad).is_err(), "{bad:?} accepted");
    }
    let mut config = Config::default();
    config.log.level = "verbose".to_owned();
    let err = config.validate().unwrap_err().to_string();
    assert!(
        err.contains("log.level") && err.contains("`verbose` is not a level"),
        "{err}"
    );
}

#[test]
fn a_misspelled_key_gets_a_suggestion() {
    let err = Config::from_toml(&["[shutdown]\ndrain_timout = \"5s\"\n"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown key `shutdown.drain_timout` (did you mean `drain_timeout`?)"),
        "{err}"
    );
    let err = Config::from_toml(&["[upstream]\nretries = 3\n"])
        .unwrap_err()
        .to_string();
    assert!(!err.contains("did you mean"), "{err}");
}
