//! The stored form of requests and records: [`ChangeOptions`] is flattened, so the JSON is
//! what it was before the type existed, both ways.

use serde_json::{Value, json};

use super::*;

fn record() -> RunRecord {
    RunRecord::pending(
        "r1".into(),
        "t".into(),
        "default".into(),
        WorkflowConfig::new(1, Vec::new()),
        PathBuf::from("/p"),
        "p".into(),
        Budget::default(),
    )
}

#[test]
fn change_options_are_stored_flat_and_left_out_when_false() {
    let mut r = record();
    let plain = serde_json::to_value(&r).unwrap();
    for key in ["change", "in_place", "no_validate", "apply", "expect_given_only"] {
        assert!(plain.get(key).is_none(), "{key} in {plain}");
    }
    r.change =
        ChangeOptions { in_place: true, no_validate: false, apply: true, expect_given_only: false };
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!((v["in_place"].clone(), v["apply"].clone()), (json!(true), json!(true)));
    assert!(v.get("no_validate").is_none() && v.get("change").is_none(), "{v}");
    assert_eq!(serde_json::from_value::<RunRecord>(v).unwrap(), r);
}

#[test]
fn records_and_requests_written_flat_load_their_change_options() {
    let mut old: Value = serde_json::to_value(record()).unwrap();
    old["no_validate"] = json!(true);
    old["apply"] = json!(true);
    let r: RunRecord = serde_json::from_value(old).unwrap();
    assert_eq!(
        r.change,
        ChangeOptions { in_place: false, no_validate: true, apply: true, expect_given_only: false }
    );
    let req: RunRequest =
        serde_json::from_value(json!({"task": "t", "in_place": true, "offline": true})).unwrap();
    assert_eq!(req.change, ChangeOptions { in_place: true, ..Default::default() });
    assert!(req.offline);
    let back = serde_json::to_value(&req).unwrap();
    assert_eq!(back, json!({"task": "t", "in_place": true, "offline": true}));
}
