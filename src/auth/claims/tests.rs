use std::time::Duration;

use serde_json::json;

use super::*;

const NOW: u64 = 1_700_000_000;

fn rules(issuers: &[&str], audiences: &[&str]) -> ClaimRules {
    ClaimRules::new(&AuthConfig {
        issuers: issuers.iter().map(|s| (*s).to_owned()).collect(),
        audiences: audiences.iter().map(|s| (*s).to_owned()).collect(),
        leeway: Duration::from_secs(60),
        ..Default::default()
    })
}

fn strings(values: &[&str]) -> Option<Box<[String]>> {
    Some(values.iter().map(|s| (*s).to_owned()).collect())
}

fn good() -> Registered {
    Registered {
        exp: NumericDate::At(NOW + 600),
        iss: strings(&["https://iss"]),
        aud: strings(&["other", "kms"]),
        ..Default::default()
    }
}

#[test]
fn numeric_dates_read_as_jsonwebtoken_read_them() {
    assert_eq!(NumericDate::of(&json!(5)), NumericDate::At(5));
    assert_eq!(NumericDate::of(&json!(5.5)), NumericDate::At(6));
    assert_eq!(NumericDate::of(&json!(-0.0)), NumericDate::At(0));
    assert_eq!(NumericDate::of(&json!(-1)), NumericDate::Malformed);
    assert_eq!(NumericDate::of(&json!(1e30)), NumericDate::Malformed);
    assert_eq!(NumericDate::of(&json!("5")), NumericDate::Malformed);
    assert_eq!(NumericDate::of(&json!(null)), NumericDate::Malformed);
    assert_eq!(date_of(&json!([1])), (NumericDate::Malformed, false));
    assert_eq!(date_of(&json!({"a": 1})), (NumericDate::Malformed, false));
    assert_eq!(date_of(&json!([])), (NumericDate::Malformed, true));
    assert_eq!(date_of(&json!(7)), (NumericDate::At(7), true));
    assert_eq!(strings_of(&json!("a")), strings(&["a"]));
    assert_eq!(strings_of(&json!(["a", "b"])), strings(&["a", "b"]));
    assert_eq!(strings_of(&json!(["a", 1])), None);
}

#[test]
fn each_check_has_its_failure() {
    let r = rules(&["https://iss"], &["kms"]);
    assert_eq!(r.check(&good(), NOW), Ok(()));
    let with = |change: fn(&mut Registered)| {
        let mut c = good();
        change(&mut c);
        r.check(&c, NOW)
    };
    assert_eq!(with(|c| c.readable = false), Err(Failure::InvalidToken));
    assert_eq!(
        with(|c| c.exp = NumericDate::Absent),
        Err(Failure::MissingExp)
    );
    assert_eq!(
        with(|c| c.exp = NumericDate::Malformed),
        Err(Failure::MissingExp)
    );
    assert_eq!(
        with(|c| c.exp = NumericDate::At(NOW - 61)),
        Err(Failure::Expired)
    );
    assert_eq!(with(|c| c.exp = NumericDate::At(NOW - 60)), Ok(()));
    assert_eq!(
        with(|c| c.nbf = NumericDate::At(NOW + 61)),
        Err(Failure::NotYetValid)
    );
    assert_eq!(with(|c| c.nbf = NumericDate::At(NOW + 60)), Ok(()));
    assert_eq!(
        with(|c| c.nbf = NumericDate::Malformed),
        Err(Failure::InvalidToken)
    );
    assert_eq!(with(|c| c.iss = None), Err(Failure::WrongIssuer));
    assert_eq!(with(|c| c.iss = strings(&["x"])), Err(Failure::WrongIssuer));
    assert_eq!(with(|c| c.iss = strings(&[])), Err(Failure::WrongIssuer));
    assert_eq!(with(|c| c.iss = strings(&["x", "https://iss"])), Ok(()));
    assert_eq!(with(|c| c.aud = None), Err(Failure::WrongAudience));
    assert_eq!(
        with(|c| c.aud = strings(&["x"])),
        Err(Failure::WrongAudience)
    );
    // Missing required claims are reported in a fixed order: exp, iss, aud.
    let mut none = Registered::default();
    assert_eq!(r.check(&none, NOW), Err(Failure::MissingExp));
    none.exp = NumericDate::At(NOW);
    assert_eq!(r.check(&none, NOW), Err(Failure::WrongIssuer));
    // A malformed nbf counts before an expired exp, as it did.
    let mut c = good();
    c.exp = NumericDate::At(1);
    c.nbf = NumericDate::Malformed;
    assert_eq!(r.check(&c, NOW), Err(Failure::InvalidToken));
}

#[test]
fn unconfigured_issuers_and_audiences_are_not_checked() {
    let r = rules(&[], &[]);
    let c = Registered {
        exp: NumericDate::At(NOW),
        iss: strings(&["anyone"]),
        ..Default::default()
    };
    assert_eq!(r.check(&c, NOW), Ok(()));
    assert_eq!(
        r.check(&Registered::default(), NOW),
        Err(Failure::MissingExp)
    );
    // Near the epoch the leeway does not wrap around.
    let early = Registered {
        exp: NumericDate::At(0),
        nbf: NumericDate::At(u64::MAX),
        ..Default::default()
    };
    assert_eq!(r.check(&early, 10), Err(Failure::NotYetValid));
}
