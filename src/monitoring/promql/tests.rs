//! Tests of the PromQL evaluator.

use super::*;

#[test]
fn range_functions_are_exactly_the_leading_entries() {
    assert_eq!(RANGE_FUNCTIONS.first(), Some(&"increase"));
    assert_eq!(RANGE_FUNCTIONS.last(), Some(&"present_over_time"));
    assert_eq!(SUPPORTED_FUNCTIONS.get(RANGE_FUNCTIONS.len()), Some(&"absent"));
}
use crate::monitoring::tsdb::stale_nan;
use std::time::Duration;

const S: i64 = 1000;

fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    let mut l: Labels = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    l.insert(METRIC_NAME.into(), name.into());
    l
}

/// Adds a series sampled every 10 s from t=0; `None` leaves a gap.
fn add(db: &mut Tsdb, name: &str, pairs: &[(&str, &str)], values: &[Option<f64>]) {
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            db.append(labels(name, pairs), i as i64 * 10 * S, *v).unwrap();
        }
    }
}

fn all(values: &[f64]) -> Vec<Option<f64>> {
    values.iter().copied().map(Some).collect()
}

fn fixture() -> Tsdb {
    let mut db = Tsdb::new(Duration::from_secs(3600));
    let a = [("job", "a"), ("instance", "i1")];
    // 0, 10, ..., 60: a counter rising 1/s.
    add(&mut db, "c_total", &a, &all(&[0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]));
    // A counter reset between 20 s (15) and 30 s (2).
    add(&mut db, "r_total", &a, &all(&[5.0, 10.0, 15.0, 2.0, 7.0, 12.0, 17.0]));
    // A counter that appears at 20 s with a small value (zero-point clamp applies).
    add(&mut db, "z_total", &a, &[None, None, Some(1.0), Some(5.0), Some(9.0)]);
    // Appears at 50 s, far from the window start: v2 clamp-before-threshold case.
    add(&mut db, "v_total", &a, &[None, None, None, None, None, Some(2.0), Some(4.0), Some(6.0)]);
    // Gauges on three instances of two jobs.
    add(&mut db, "temp", &[("job", "a"), ("instance", "i1")], &all(&[1.0, 3.0, 2.0, 8.0, 4.0, 6.0, 5.0]));
    add(&mut db, "temp", &[("job", "a"), ("instance", "i2")], &all(&[10.0; 7]));
    add(&mut db, "temp", &[("job", "b"), ("instance", "i3")], &all(&[-2.5; 7]));
    add(&mut db, "limit", &[("job", "a"), ("instance", "i1")], &all(&[4.0; 7]));
    add(&mut db, "limit", &[("job", "a"), ("instance", "i2")], &all(&[20.0; 7]));
    db
}

fn vector(expr: &str, db: &Tsdb, t: i64) -> Vec<(Labels, f64)> {
    match query(expr, db, t) {
        Ok(Value::Vector(v)) => v.into_iter().map(|s| (s.labels, s.value)).collect(),
        other => panic!("{expr}: expected a vector, got {other:?}"),
    }
}

fn single(expr: &str, db: &Tsdb, t: i64) -> f64 {
    let v = vector(expr, db, t);
    assert_eq!(v.len(), 1, "{expr}: {v:?}");
    v[0].1
}

fn scalar(expr: &str, db: &Tsdb, t: i64) -> f64 {
    match query(expr, db, t) {
        Ok(Value::Scalar(v)) => v,
        other => panic!("{expr}: expected a scalar, got {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

// The numbers below were worked out by hand and cross-checked with `promtool test rules`
// (Prometheus 2.42) on the same series.

#[test]
fn increase_and_rate_extrapolate_like_prometheus() {
    let db = fixture();
    // [30 s, 60 s] holds 30..60 (closed interval: 4 samples), no extrapolation needed: 60 - 30 = 30.
    assert_eq!(single("increase(c_total[30s])", &db, 60 * S), 30.0);
    assert_eq!(single("count_over_time(c_total[30s])", &db, 60 * S), 4.0);
    // At 65 s the window [35, 65] holds 40, 50, 60: raw 20 over 20 s, 5 s to each edge (< 1.1 × 10 s)
    // so extrapolated over 30 s: 20 × 30/20 = 30, rate 30/30 = 1.
    assert_eq!(single("increase(c_total[30s])", &db, 65 * S), 30.0);
    assert_eq!(single("rate(c_total[30s])", &db, 65 * S), 1.0);
    // Reset: 17 - 5 + 15 (value before the drop) = 27 over the full minute; rate 27/60 = 0.45.
    assert_eq!(single("increase(r_total[60s])", &db, 60 * S), 27.0);
    assert!(close(single("rate(r_total[60s])", &db, 60 * S), 0.45));
    // Zero clamp: 1, 5, 9 at 20..40 s, window [15, 45]. Raw 8; the counter would hit 0 at
    // 20 × 1/8 = 2.5 s before the first sample (< 5 s to the edge): 8 × (20 + 2.5 + 5)/20 = 11.
    assert_eq!(single("increase(z_total[30s])", &db, 45 * S), 11.0);
    // delta has no clamp: 8 × 30/20 = 12.
    assert_eq!(single("delta(z_total[30s])", &db, 45 * S), 12.0);
    // v2 clamp order: 2, 4, 6 at 50..70 s, window [0, 70]. Zero point 20 × 2/4 = 10 s back, which
    // replaces the 50 s and is < 11 s, so 4 × (20 + 10)/20 = 6 (Prometheus 3 would give 5).
    assert_eq!(single("increase(v_total[70s])", &db, 70 * S), 6.0);
    // The offset shifts the window: [30 s, 60 s] again.
    assert_eq!(single("increase(c_total[30s] offset 10s)", &db, 70 * S), 30.0);
    // A single sample in the window gives no result.
    assert!(vector("increase(c_total[5s])", &db, 60 * S).is_empty());
}

#[test]
fn instant_and_counting_range_functions() {
    let db = fixture();
    // Last two samples of r_total: 12 → 17 over 10 s.
    assert_eq!(single("irate(r_total[60s])", &db, 60 * S), 0.5);
    assert_eq!(single("idelta(r_total[60s])", &db, 60 * S), 5.0);
    // irate across the reset (15 → 2 at 30 s): takes the post-reset value, 2/10 s.
    assert_eq!(single("irate(r_total[25s])", &db, 30 * S), 0.2);
    assert_eq!(single("idelta(r_total[25s])", &db, 30 * S), -13.0);
    assert_eq!(single("resets(r_total[60s])", &db, 60 * S), 1.0);
    assert_eq!(single("changes(r_total[60s])", &db, 60 * S), 6.0);
    assert_eq!(single(r#"changes(temp{instance="i2"}[60s])"#, &db, 60 * S), 0.0);
}

#[test]
fn over_time_functions() {
    let db = fixture();
    let i1 = r#"temp{instance="i1"}[30s]"#;
    // Window [30, 60] of temp{i1}: 8, 4, 6, 5.
    assert_eq!(single(&format!("avg_over_time({i1})"), &db, 60 * S), 5.75);
    assert_eq!(single(&format!("sum_over_time({i1})"), &db, 60 * S), 23.0);
    assert_eq!(single(&format!("min_over_time({i1})"), &db, 60 * S), 4.0);
    assert_eq!(single(&format!("max_over_time({i1})"), &db, 60 * S), 8.0);
    assert_eq!(single(&format!("count_over_time({i1})"), &db, 60 * S), 4.0);
    assert_eq!(single(&format!("present_over_time({i1})"), &db, 60 * S), 1.0);
    // last_over_time keeps the metric name, the others drop it.
    let last = vector(&format!("last_over_time({i1})"), &db, 60 * S);
    assert_eq!(last, vec![(labels("temp", &[("job", "a"), ("instance", "i1")]), 5.0)]);
    let avg = vector(&format!("avg_over_time({i1})"), &db, 60 * S);
    assert!(!avg[0].0.contains_key(METRIC_NAME));
}

#[test]
fn selectors_matchers_lookback_offset_and_staleness() {
    let mut db = fixture();
    assert_eq!(vector(r#"temp{job="a"}"#, &db, 60 * S).len(), 2);
    assert_eq!(vector(r#"temp{job!="a"}"#, &db, 60 * S).len(), 1);
    // Regexes are anchored: "i" alone matches nothing, "i[12]" two series.
    assert!(vector(r#"temp{instance=~"i"}"#, &db, 60 * S).is_empty());
    assert_eq!(vector(r#"temp{instance=~"i[12]"}"#, &db, 60 * S).len(), 2);
    assert_eq!(vector(r#"temp{instance!~"i[12]"}"#, &db, 60 * S).len(), 1);
    assert_eq!(vector(r#"{__name__=~"lim.*"}"#, &db, 60 * S).len(), 2);
    // Latest sample at or before t: at 35 s temp{i1} is the 30 s sample, 8.
    assert_eq!(single(r#"temp{instance="i1"}"#, &db, 35 * S), 8.0);
    // offset 20s at 60 s reads the 40 s sample.
    assert_eq!(single(r#"temp{instance="i1"} offset 20s"#, &db, 60 * S), 4.0);
    // Lookback: the last sample (60 s) is visible up to 360 s inclusive, not after.
    assert_eq!(single(r#"temp{instance="i1"}"#, &db, 360 * S), 5.0);
    assert!(vector(r#"temp{instance="i1"}"#, &db, 361 * S).is_empty());
    // A staleness marker ends the series at once, also for range selectors.
    db.append(labels("temp", &[("job", "a"), ("instance", "i1")]), 70 * S, stale_nan()).unwrap();
    assert!(vector(r#"temp{instance="i1"}"#, &db, 75 * S).is_empty());
    assert_eq!(single(r#"count_over_time(temp{instance="i1"}[30s])"#, &db, 70 * S), 3.0);
}

#[test]
fn comparisons_filter_or_return_bool() {
    let db = fixture();
    // Filtering keeps the series (with its name) and its own value.
    let hot = vector("temp > 5", &db, 60 * S);
    assert_eq!(hot, vec![(labels("temp", &[("job", "a"), ("instance", "i2")]), 10.0)]);
    // Scalar on the left: still the vector's value that survives.
    let cold = vector("0 > temp", &db, 60 * S);
    assert_eq!(cold, vec![(labels("temp", &[("job", "b"), ("instance", "i3")]), -2.5)]);
    // bool: every series, 0 or 1, name dropped.
    let flags = vector("temp > bool 5", &db, 60 * S);
    assert_eq!(flags.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![0.0, 1.0, 0.0]);
    assert!(flags.iter().all(|(l, _)| !l.contains_key(METRIC_NAME)));
    assert_eq!(scalar("2 > bool 1", &db, 0), 1.0);
    assert_eq!(scalar("2 == bool 1", &db, 0), 0.0);
    // Vector/vector: temp{i1}=5 > limit 4 holds, temp{i2}=10 > 20 does not.
    let over = vector("temp > limit", &db, 60 * S);
    assert_eq!(over, vec![(labels("temp", &[("job", "a"), ("instance", "i1")]), 5.0)]);
    let over_bool = vector("temp > bool limit", &db, 60 * S);
    assert_eq!(over_bool.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![1.0, 0.0]);
}

#[test]
fn arithmetic_and_vector_matching() {
    let db = fixture();
    // At 60 s: temp = 5 (i1), 10 (i2), -2.5 (i3); limit = 4 (i1), 20 (i2).
    let diff = vector("temp - limit", &db, 60 * S);
    assert_eq!(
        diff,
        vec![
            (labels_no_name(&[("job", "a"), ("instance", "i1")]), 1.0),
            (labels_no_name(&[("job", "a"), ("instance", "i2")]), -10.0)
        ]
    );
    assert_eq!(single(r#"temp{instance="i1"} * 2 + 1"#, &db, 60 * S), 11.0);
    assert_eq!(single(r#"temp{instance="i2"} % 3"#, &db, 60 * S), 1.0);
    assert_eq!(single(r#"temp{instance="i2"} ^ 2"#, &db, 60 * S), 100.0);
    assert_eq!(single(r#"-temp{instance="i3"}"#, &db, 60 * S), 2.5);
    assert_eq!(scalar("7 / 2", &db, 0), 3.5);
    // on(): only `instance` is compared and kept.
    let on = vector(r#"temp / on(instance) limit"#, &db, 60 * S);
    assert_eq!(
        on,
        vec![(labels_no_name(&[("instance", "i1")]), 1.25), (labels_no_name(&[("instance", "i2")]), 0.5)]
    );
    // ignoring(instance): every temp{job="a"} matches both limits: many-to-many is refused.
    let err = query("temp - ignoring(instance) limit", &db, 60 * S).unwrap_err();
    assert!(err.to_string().contains("duplicate series for the match group"), "{err}");
    // Same labels after dropping the name: refused.
    let err = query(r#"{__name__=~"temp|limit", instance="i1"} * 1"#, &db, 60 * S).unwrap_err();
    assert!(err.to_string().contains("same labelset"), "{err}");
}

fn labels_no_name(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn aggregations_by_and_without() {
    let db = fixture();
    // temp at 60 s: a/i1 5, a/i2 10, b/i3 -2.5.
    assert_eq!(single("sum(temp)", &db, 60 * S), 12.5);
    let by_job = vector("sum by (job) (temp)", &db, 60 * S);
    assert_eq!(
        by_job,
        vec![(labels_no_name(&[("job", "a")]), 15.0), (labels_no_name(&[("job", "b")]), -2.5)]
    );
    let without = vector("max without (instance) (temp)", &db, 60 * S);
    assert_eq!(
        without,
        vec![(labels_no_name(&[("job", "a")]), 10.0), (labels_no_name(&[("job", "b")]), -2.5)]
    );
    assert_eq!(vector("avg by (job) (temp)", &db, 60 * S)[0].1, 7.5);
    assert_eq!(vector("min by (job) (temp)", &db, 60 * S)[0].1, 5.0);
    assert_eq!(vector("count without (instance) (temp)", &db, 60 * S)[0].1, 2.0);
    // without () only drops the name.
    assert_eq!(vector("sum without () (temp)", &db, 60 * S).len(), 3);
    let top = vector("topk(2, temp)", &db, 60 * S);
    assert_eq!(top.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![10.0, 5.0]);
    assert_eq!(top[0].0.get(METRIC_NAME).map(String::as_str), Some("temp"));
    let bottom = vector("bottomk by (job) (1, temp)", &db, 60 * S);
    assert_eq!(bottom.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![5.0, -2.5]);
    assert!(vector("topk(0, temp)", &db, 60 * S).is_empty());
}

#[test]
fn set_operators() {
    let db = fixture();
    let instances = |expr: &str| -> Vec<String> {
        vector(expr, &db, 60 * S).into_iter().map(|(l, _)| l["instance"].clone()).collect()
    };
    // limit exists for i1 and i2 only; the name does not take part in matching.
    assert_eq!(instances("temp and limit"), vec!["i1", "i2"]);
    assert_eq!(instances("temp unless limit"), vec!["i3"]);
    assert_eq!(instances(r#"limit or temp"#), vec!["i1", "i2", "i3"]);
    let or = vector("limit or temp", &db, 60 * S);
    assert_eq!(or[2].0.get(METRIC_NAME).map(String::as_str), Some("temp"));
    assert_eq!(instances(r#"temp and on(job) limit{instance="i1"}"#), vec!["i1", "i2"]);
    assert_eq!(instances(r#"temp unless ignoring(instance) limit{instance="i1"}"#), vec!["i3"]);
}

#[test]
fn absent_and_scalar_functions() {
    let db = fixture();
    assert!(vector("absent(temp)", &db, 60 * S).is_empty());
    let absent = vector(r#"absent(nope{job="mqtt", instance=~"x.*", env="a", env="b"})"#, &db, 60 * S);
    assert_eq!(absent, vec![(labels_no_name(&[("job", "mqtt")]), 1.0)]);
    let absent = vector("absent(sum(nope))", &db, 60 * S);
    assert_eq!(absent, vec![(Labels::new(), 1.0)]);
    // temp at 60 s: 5, 10, -2.5.
    let abs = vector("abs(temp)", &db, 60 * S);
    assert_eq!(abs.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![5.0, 10.0, 2.5]);
    assert!(!abs[0].0.contains_key(METRIC_NAME));
    assert_eq!(single(r#"ceil(temp{job="b"})"#, &db, 60 * S), -2.0);
    assert_eq!(single(r#"floor(temp{job="b"})"#, &db, 60 * S), -3.0);
    // round() rounds halves up: -2.5 → -2; to the nearest 4: 10 → 12 (floor(2.5 + 0.5) × 4).
    assert_eq!(single(r#"round(temp{job="b"})"#, &db, 60 * S), -2.0);
    assert_eq!(single(r#"round(temp{instance="i2"}, 4)"#, &db, 60 * S), 12.0);
    assert_eq!(single(r#"clamp_min(temp{job="b"}, 0)"#, &db, 60 * S), 0.0);
    assert_eq!(single(r#"clamp_max(temp{instance="i2"}, 7)"#, &db, 60 * S), 7.0);
    assert_eq!(scalar("time()", &db, 61_500), 61.5);
    assert_eq!(vector("vector(3)", &db, 0), vec![(Labels::new(), 3.0)]);
    assert_eq!(scalar(r#"scalar(temp{instance="i2"})"#, &db, 60 * S), 10.0);
    assert!(scalar("scalar(temp)", &db, 60 * S).is_nan());
    assert_eq!(query(r#""hello""#, &db, 0), Ok(Value::String("hello".into())));
}

#[test]
fn unsupported_constructs_are_named() {
    let cases = [
        ("histogram_quantile(0.9, rate(x[5m]))", "function `histogram_quantile`"),
        ("max_over_time(rate(x[1m])[5m:1m])", "subquery"),
        ("a * on(job) group_left(x) b", "group_left"),
        ("x @ 100", "@ modifier"),
        ("quantile(0.5, x)", "aggregation `quantile`"),
        ("x[5m]", "range vector selector"),
        ("stddev(x)", "aggregation `stddev`"),
    ];
    for (expr, construct) in cases {
        let parsed = parse(expr).unwrap();
        let err = check_supported(&parsed).unwrap_err();
        assert!(
            matches!(&err, PromqlError::Unsupported { construct: c } if c.contains(construct)),
            "{expr}: {err}"
        );
    }
    assert!(matches!(parse("rate(x)"), Err(PromqlError::Parse { .. })));
    assert!(check_supported(&parse(r#"increase(broker_uptime{job="mqtt"}[30s]) == 0"#).unwrap()).is_ok());
}
