use super::*;

#[test]
fn defaults_are_valid() {
    Config::default().validate().unwrap();
}
