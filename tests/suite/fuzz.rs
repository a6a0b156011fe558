//! Fuzz targets for every parser that takes outside bytes (issue 15), as property-based harnesses on
//! proptest's engine, run by `cargo test` with a small, fixed budget and by `scripts/fuzz.sh TARGET
//! SECONDS` for as long as asked.
//!
//! Each target (`fuzz::<target>`) feeds one parser's public entry point two kinds of input, both bounded
//! in size so memory stays bounded:
//!
//! - arbitrary input: random bytes (at most [`MAX_ARBITRARY`]) and "token soup", a random sequence of
//!   the format's own tokens and characters;
//! - structure-aware mutants of valid seeds (the shipped flows, rule files, Fluentd configuration,
//!   experiments, Chaos Mesh files and knowledge graph, Forward messages built with `rmpv`, …): one to
//!   eight edits each (mostly one) — bit flips, interesting bytes, insertions of random bytes or of a token of the
//!   format, deletions, truncations, duplicated segments and swapped lines — capped at [`MAX_MUTATED`].
//!
//! The property is at least "never panics" (a panic fails the case, and proptest shrinks it to a minimal
//! input); where it is cheap, something stronger: every seed parses, decoding is deterministic, an error
//! names the place the parser promises (a line, a key, a byte position), a stream decodes the same however
//! it is split into reads, accepted values round-trip.
//!
//! The budget: [`DEFAULT_CASES`] cases and a fixed RNG seed, so `cargo test` is fast and repeatable;
//! `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override them (that is how `scripts/fuzz.sh` runs batches
//! with fresh seeds until its time is up). Nothing is written into the repository (no failure
//! persistence). Each target prints `fuzz-stats: <target> executions=<n> accepted=<n> seconds=<s>`
//! (visible with `--nocapture`; `accepted` counts the inputs the parser took, a measure of how deep the
//! mutants reach). Inputs that once failed are kept as plain `#[test]`s at the end of this file.
//!
//! This is random testing guided by structure, not by coverage: cargo-afl would need AFL++ built on
//! every machine and a `main` per target, while these targets run in the suite CI already runs.

use std::cell::Cell;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

use chaoslab::config::{Problem, ProblemsError, Severity};

/// Largest arbitrary input, in bytes.
const MAX_ARBITRARY: usize = 4096;
/// Largest mutant of a seed, in bytes (the largest seed, `flows/logging/fluent.conf`, is about 7 KiB).
const MAX_MUTATED: usize = 8192;
/// Cases per target when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 64;
/// RNG seed when `PROPTEST_RNG_SEED` is not set: `cargo test` runs the same cases every time.
const DEFAULT_RNG_SEED: u64 = 15;
/// Longest shrinking, in milliseconds, when `PROPTEST_MAX_SHRINK_TIME` is not set.
const DEFAULT_SHRINK_MS: u32 = 60_000;
/// Most shrinking steps when `PROPTEST_MAX_SHRINK_ITERS` is not set.
const DEFAULT_SHRINK_ITERS: u32 = 100_000;

// ---------------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------------

/// proptest's configuration from the environment (`PROPTEST_*`), with this module's defaults where a
/// variable is not set, no failure persistence and never a fork.
fn config() -> Config {
    let env = Config::default();
    let set = |name: &str| std::env::var_os(name).is_some();
    Config {
        cases: if set("PROPTEST_CASES") { env.cases } else { DEFAULT_CASES },
        rng_seed: if set("PROPTEST_RNG_SEED") { env.rng_seed } else { RngSeed::Fixed(DEFAULT_RNG_SEED) },
        max_shrink_time: if set("PROPTEST_MAX_SHRINK_TIME") {
            env.max_shrink_time
        } else {
            DEFAULT_SHRINK_MS
        },
        max_shrink_iters: if set("PROPTEST_MAX_SHRINK_ITERS") {
            env.max_shrink_iters
        } else {
            DEFAULT_SHRINK_ITERS
        },
        failure_persistence: None,
        fork: false,
        timeout: 0,
        ..env
    }
}

/// Runs `property` on inputs from `strategy`; counts and prints the executions, and fails with
/// proptest's minimal failing input.
fn fuzz<S>(target: &str, strategy: S, property: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: fmt::Debug,
{
    let mut runner = TestRunner::new(config());
    let executions = AtomicU64::new(0);
    let started = Instant::now();
    ACCEPTED.set(0);
    let result = runner.run(&strategy, |input| {
        executions.fetch_add(1, Ordering::Relaxed);
        property(input)
    });
    println!(
        "fuzz-stats: {target} executions={} accepted={} seconds={:.3}",
        executions.load(Ordering::Relaxed),
        ACCEPTED.get(),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("fuzz::{target} failed: {e}");
    }
}

thread_local! {
    /// Inputs the parser under test accepted in this thread's current run (the property runs in-process,
    /// on the test's thread).
    static ACCEPTED: Cell<u64> = const { Cell::new(0) };
}

/// Counts an input the parser accepted (shown as `accepted=` in the statistics: how deep the mutants get).
fn accepted() {
    ACCEPTED.set(ACCEPTED.get() + 1);
}

/// Fails the case with `message` unless `condition` holds.
fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if condition { Ok(()) } else { Err(TestCaseError::fail(message())) }
}

/// Bytes shown as a Rust byte string, so a failing input can be pasted into a regression test.
#[derive(Clone, PartialEq, Eq)]
struct Input(Vec<u8>);

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\" ({} bytes)", self.0.escape_ascii(), self.0.len())
    }
}

impl Input {
    /// The bytes as text, invalid UTF-8 replaced by U+FFFD (for parsers that take `&str`).
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// One edit of a seed. Positions are taken modulo the current length.
#[derive(Clone, Debug)]
enum Edit {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    Insert(usize, Vec<u8>),
    Token(usize, usize),
    Delete(usize, usize),
    Truncate(usize),
    Duplicate(usize, usize, usize),
    SwapLines(usize, usize),
}

/// Bytes that often sit on a boundary of some format.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xff, 0xc0, 0xc1, 0xc2, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0x92, 0x81, b'\n', b'\r',
    b'\t', b' ', b'"', b'\'', b'\\', b'{', b'}', b'[', b']', b'<', b'>', b':', b',', b'=', b'#', b'-', b'.',
    b'0', b'9', b'%', b'$', b'*', b'&', b'|', b'!', b'?', b'@', b'/', b'+',
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        2 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Edit::FlipBit(at, bit)),
        2 => (any::<usize>(), proptest::sample::select(INTERESTING)).prop_map(|(at, b)| Edit::SetByte(at, b)),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, b)| Edit::Insert(at, b)),
        3 => (any::<usize>(), any::<usize>()).prop_map(|(at, t)| Edit::Token(at, t)),
        2 => (any::<usize>(), 1usize..64).prop_map(|(at, n)| Edit::Delete(at, n)),
        1 => any::<usize>().prop_map(Edit::Truncate),
        2 => (any::<usize>(), 1usize..256, any::<usize>()).prop_map(|(from, n, to)| Edit::Duplicate(from, n, to)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

/// Applies `edits` to `seed`; the result is at most [`MAX_MUTATED`] bytes.
fn apply(seed: &[u8], edits: &[Edit], tokens: &[&str]) -> Vec<u8> {
    let mut buf = seed.to_vec();
    for e in edits {
        let len = buf.len();
        let at = |p: usize| p % (len + 1);
        match e {
            Edit::FlipBit(p, bit) if len > 0 => buf[p % len] ^= 1 << bit,
            Edit::SetByte(p, b) if len > 0 => buf[p % len] = *b,
            Edit::Insert(p, bytes) => {
                let p = at(*p);
                buf.splice(p..p, bytes.iter().copied());
            }
            Edit::Token(p, t) if !tokens.is_empty() => {
                let p = at(*p);
                buf.splice(p..p, tokens[t % tokens.len()].bytes());
            }
            Edit::Delete(p, n) => {
                let p = at(*p);
                buf.drain(p..(p + n).min(len));
            }
            Edit::Truncate(p) => buf.truncate(at(*p)),
            Edit::Duplicate(from, n, to) if len > 0 => {
                let from = from % len;
                let segment = buf[from..(from + n).min(len)].to_vec();
                let to = at(*to);
                buf.splice(to..to, segment);
            }
            Edit::SwapLines(a, b) => {
                let mut lines: Vec<Vec<u8>> = buf.split(|c| *c == b'\n').map(<[u8]>::to_vec).collect();
                let n = lines.len();
                lines.swap(a % n, b % n);
                buf = lines.join(&b'\n');
            }
            _ => {}
        }
        buf.truncate(MAX_MUTATED);
    }
    buf
}

/// Mutants of `seeds`: one to eight edits each (mostly one), inserted tokens taken from `tokens`.
fn mutants(seeds: Vec<Vec<u8>>, tokens: &'static [&'static str]) -> impl Strategy<Value = Input> {
    assert!(!seeds.is_empty(), "a target needs at least one seed");
    let seeds = Arc::new(seeds);
    // Mostly one edit, so that many mutants stay valid enough to reach the checks behind the syntax.
    let edits = prop_oneof![
        3 => proptest::collection::vec(edit(), 1..=1),
        2 => proptest::collection::vec(edit(), 1..4),
        1 => proptest::collection::vec(edit(), 1..=8),
    ];
    (0..seeds.len(), edits).prop_map(move |(i, edits)| Input(apply(&seeds[i], &edits, tokens)))
}

/// Random bytes, at most [`MAX_ARBITRARY`].
fn arbitrary_bytes() -> impl Strategy<Value = Input> {
    proptest::collection::vec(any::<u8>(), 0..=MAX_ARBITRARY).prop_map(Input)
}

/// A random sequence of `tokens` and single characters, at most 256 pieces.
fn token_soup(tokens: &'static [&'static str]) -> impl Strategy<Value = Input> {
    let piece = prop_oneof![
        3 => proptest::sample::select(tokens).prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
        2 => proptest::sample::select(&b" \n\t:,-_.0123456789abcxyz\"'{}[]"[..]).prop_map(|b| char::from(b).to_string()),
    ];
    proptest::collection::vec(piece, 0..256).prop_map(|pieces| Input(pieces.concat().into_bytes()))
}

/// The usual mix for a target: mostly mutants, some token soup, some random bytes.
fn inputs(seeds: Vec<Vec<u8>>, tokens: &'static [&'static str]) -> impl Strategy<Value = Input> {
    prop_oneof![6 => mutants(seeds, tokens), 2 => token_soup(tokens), 1 => arbitrary_bytes()]
}

/// A file of the repository, read once (test setup).
fn repo_file(path: &str) -> Vec<u8> {
    let full = repo_path(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn repo_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The error problems of a [`ProblemsError`] that name no place (no line and no key).
fn unplaced(problems: &[Problem]) -> Vec<String> {
    problems
        .iter()
        .filter(|p| p.severity == Severity::Error && p.line.is_none() && p.key.is_empty())
        .map(ToString::to_string)
        .collect()
}

/// Checks that every error of `e` names `file`, and a line or a key.
fn placed(e: &ProblemsError, file: &str) -> Result<(), TestCaseError> {
    check(!e.0.is_empty(), || "an error without problems".to_string())?;
    for p in e.errors() {
        check(p.file.starts_with(file) || p.file.contains("(built in)"), || {
            format!("problem names another file: {p}")
        })?;
    }
    let loose = unplaced(&e.0);
    check(loose.is_empty(), || format!("problems without a line or key: {loose:?}"))
}

const YAML_TOKENS: &[&str] = &[
    ": ",
    "- ",
    "\n",
    "\n  ",
    "\n    ",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "'",
    "\"",
    "# ",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "!!int ",
    "<<: *a\n",
    "---\n",
    "...\n",
    "|\n",
    ">-\n",
    "~",
    "null",
    "true",
    "yes",
    "1e400",
    "-0",
    "0x1F",
    ".nan",
    "-.inf",
    "? ",
    "\t",
    "%YAML 1.2\n",
    "\\u0000",
    "\u{feff}",
    "\u{85}",
    "ü",
    "😀",
];

// ---------------------------------------------------------------------------------------------------
// Forward protocol
// ---------------------------------------------------------------------------------------------------

mod forward_seeds {
    use rmpv::Value as M;

    fn encode(value: &M) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).expect("msgpack into a Vec");
        out
    }

    fn map(pairs: &[(&str, M)]) -> M {
        M::Map(pairs.iter().map(|(k, v)| (M::from(*k), v.clone())).collect())
    }

    fn event_time(secs: u32, nanos: u32) -> M {
        let mut bytes = secs.to_be_bytes().to_vec();
        bytes.extend_from_slice(&nanos.to_be_bytes());
        M::Ext(0, bytes)
    }

    /// Valid Forward messages in every mode, and one stream of them all.
    pub fn all() -> Vec<Vec<u8>> {
        let record = map(&[("message", M::from("ConsumeMQTT[id=1] failed")), ("level", M::from("ERROR"))]);
        let nested = map(&[("x", M::Array(vec![M::from(1), M::from(-2), M::Nil, M::from(1.5)]))]);
        let entries = {
            let mut bytes = encode(&M::Array(vec![M::from(1_700_000_000), record.clone()]));
            bytes.extend(encode(&M::Array(vec![event_time(1_700_000_001, 5), nested.clone()])));
            bytes
        };
        let gzip = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &entries).expect("gzip into a Vec");
            gz.finish().expect("gzip into a Vec")
        };
        let messages = [
            M::Array(vec![M::from("app.log"), M::from(1_700_000_000), record.clone()]),
            M::Array(vec![
                M::from("app.log"),
                event_time(1_700_000_000, 123),
                record.clone(),
                map(&[("chunk", M::from("p8n9gmxTQVC8/nh2wlKKeQ=="))]),
            ]),
            M::Array(vec![M::from("t"), M::from(1.25), nested]),
            M::Array(vec![
                M::from("com.chaoslab.nifi.platform"),
                M::Array(vec![
                    M::Array(vec![M::from(1_700_000_000), record.clone()]),
                    M::Array(vec![M::Nil, record]),
                ]),
                map(&[("chunk", M::from("c1"))]),
            ]),
            M::Array(vec![M::from("packed"), M::Binary(entries.clone()), map(&[("size", M::from(2))])]),
            M::Array(vec![
                M::from("packed.gz"),
                M::Binary(gzip),
                map(&[("compressed", M::from("gzip")), ("chunk", M::from("z"))]),
            ]),
            M::Nil,
        ];
        let mut seeds: Vec<Vec<u8>> = messages.iter().map(encode).collect();
        seeds.push(seeds.concat());
        seeds
    }
}

const MSGPACK_TOKENS: &[&str] =
    &["\u{0}", "\u{7f}", "\u{1}", "\u{10}", "app.log", "chunk", "compressed", "gzip", "size", "text"];

/// Splits the stream as `sizes` says (cycled), feeds a [`FrameDecoder`] and returns each frame
/// re-encoded, then the error that stopped it and whether bytes were left over.
fn forward_frames(bytes: &[u8], sizes: &[usize]) -> (Vec<Vec<u8>>, Option<String>, bool) {
    use chaoslab::monitoring::logs::forward::FrameDecoder;
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    let mut rest = bytes;
    let mut sizes = sizes.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        decoder.push(&rest[..n]);
        rest = &rest[n..];
        loop {
            match decoder.next_frame() {
                Ok(Some(value)) => {
                    let mut out = Vec::new();
                    if let Err(e) = rmpv::encode::write_value(&mut out, &value) {
                        return (frames, Some(format!("re-encoding a frame: {e}")), true);
                    }
                    frames.push(out);
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e.to_string()), true),
            }
        }
    }
    let partial = decoder.has_partial();
    (frames, None, partial)
}

#[test]
fn forward_decoder() {
    use chaoslab::monitoring::logs::event::EventTime;
    use chaoslab::monitoring::logs::forward::{ForwardMode, MAX_TAG_LEN, decode_message};
    let seeds = forward_seeds::all();
    for seed in &seeds {
        let (frames, error, partial) = forward_frames(seed, &[]);
        assert!(error.is_none() && !partial && !frames.is_empty(), "seed does not decode: {error:?}");
    }
    let strategy = (inputs(seeds, MSGPACK_TOKENS), proptest::collection::vec(1usize..64, 0..16));
    fuzz("forward_decoder", strategy, |(input, sizes)| {
        let whole = forward_frames(&input.0, &[]);
        let split = forward_frames(&input.0, &sizes);
        check(whole == split, || format!("splitting the stream changed the result:\n{whole:?}\n{split:?}"))?;
        let mut any_message = false;
        for frame in &whole.0 {
            let read = || {
                let value = rmpv::decode::read_value(&mut frame.as_slice()).map_err(|e| e.to_string())?;
                Ok::<_, String>(decode_message(value, || EventTime::new(7, 0)))
            };
            let (first, again) = (read(), read());
            check(first == again, || "decoding the same frame twice differed".to_string())?;
            if let Ok(Ok(message)) = first {
                any_message = true;
                for event in &message.events {
                    check(!event.tag.is_empty() && event.tag.len() <= MAX_TAG_LEN, || {
                        format!("accepted tag of {} bytes", event.tag.len())
                    })?;
                }
                if message.mode == ForwardMode::Heartbeat {
                    check(message.events.is_empty(), || "a heartbeat with events".to_string())?;
                }
            }
        }
        if any_message {
            accepted();
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------------
// Fluentd configuration
// ---------------------------------------------------------------------------------------------------

const FLUENT_TOKENS: &[&str] = &[
    "<source>\n",
    "</source>\n",
    "<match **>\n",
    "<match a.** b.*>\n",
    "</match>\n",
    "<filter *.*>\n",
    "</filter>\n",
    "<label @X>\n",
    "</label>\n",
    "@type ",
    "@type forward\n",
    "@type http\n",
    "@type stdout\n",
    "@type record_transformer\n",
    "@type grep\n",
    "@type copy\n",
    "@type relabel\n",
    "@type parser\n",
    "@label @X\n",
    "@include *.conf\n",
    "@include nodered_signal_rules.conf\n",
    "<store>\n",
    "</store>\n",
    "<record>\n",
    "</record>\n",
    "<parse>\n",
    "</parse>\n",
    "<regexp>\n",
    "</regexp>\n",
    "<exclude>\n",
    "</exclude>\n",
    "<inject>\n",
    "</inject>\n",
    "key message\n",
    "pattern /(?<a>.*)/\n",
    "expression /^(?<x>\\d+)$/\n",
    "${record[\"a\"]}",
    "${tag_parts[-1]}",
    "${tag}",
    "#{ENV}",
    "\"",
    "'",
    "\\",
    "{",
    "}",
    "[",
    "]",
    "\n",
    "  ",
    "port 24224\n",
    "time_format %Y-%m-%dT%H:%M:%S.%NZ\n",
    "true",
    "false",
    "1.5s",
    "-1",
    "999999999999999999999",
    "enable_ruby true\n",
    "# ",
    "(?<",
    "\\k<a>",
    "\\p{L}",
];

#[test]
fn fluentd_config() {
    use chaoslab::monitoring::logs::config::{Config, ConfigError};
    let dir = repo_path("flows/logging");
    let names = [
        "fluent.conf",
        "kafka_output.conf",
        "mqtt_signal_rules.conf",
        "nifi_signal_rules.conf",
        "nodered_signal_rules.conf",
    ];
    let seeds: Vec<Vec<u8>> = names.iter().map(|n| repo_file(&format!("flows/logging/{n}"))).collect();
    let parsed = Config::parse_str(&String::from_utf8_lossy(&seeds[0]), &dir.join("fluent.conf"));
    assert!(parsed.is_ok(), "fluent.conf: {parsed:?}");
    // Relative includes resolve in flows/logging; the file itself does not exist (no include cycle).
    let file = dir.join("fuzz.conf");
    fuzz("fluentd_config", inputs(seeds, FLUENT_TOKENS), |input| {
        let text = input.text();
        match Config::parse_str(&text, &file) {
            Ok(_) => {
                accepted();
                Ok(())
            }
            Err(ConfigError::Invalid(e)) => {
                let loose = unplaced(&e.0);
                check(loose.is_empty(), || format!("problems without a line: {loose:?}"))
            }
            Err(e) => Err(TestCaseError::fail(format!("unexpected error kind: {e}"))),
        }
    });
}

// ---------------------------------------------------------------------------------------------------
// HTTP log input (Fluentd's in_http)
// ---------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct HttpCase {
    tag: Vec<String>,
    query: Option<String>,
    content_type: Option<&'static str>,
    time_format: usize,
    body: Input,
}

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "application/msgpack",
    "application/x-msgpack",
    "application/x-www-form-urlencoded",
    "text/plain",
    "multipart/form-data; boundary=x",
];

const HTTP_TOKENS: &[&str] = &[
    "\"time\"",
    "\"2020-02-21T21:20:33.224Z\"",
    "\"2020-02-30T25:61:61.9999999999Z\"",
    "1582320033.224",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "json=",
    "msgpack=",
    "time=",
    "&",
    "%7B",
    "%",
    "+",
    "null",
    "-1e999",
    "\"\\u0000\"",
    "\"\\ud800\"",
];

/// `time_format` settings tried: the reference's, epoch seconds, and two more `strptime` formats.
const TIME_FORMATS: &[Option<&str>] =
    &[Some("%Y-%m-%dT%H:%M:%S.%NZ"), None, Some("%d/%b/%Y:%H:%M:%S %z"), Some("%s.%N %j %% %a %p")];

/// Seed bodies, each with the content types that announce it: JSON, a form with a `json` field, msgpack.
fn http_seeds() -> Vec<(Vec<u8>, &'static [Option<&'static str>])> {
    let record = rmpv::Value::Map(vec![
        (rmpv::Value::from("time"), rmpv::Value::from("2020-02-21T21:20:33.224Z")),
        (rmpv::Value::from("message"), rmpv::Value::from("x")),
    ]);
    let mut msgpack = Vec::new();
    rmpv::encode::write_value(&mut msgpack, &rmpv::Value::Array(vec![record.clone(), record]))
        .expect("msgpack into a Vec");
    const JSON: &[Option<&str>] = &[Some("application/json"), Some("application/json; charset=utf-8")];
    const FORM: &[Option<&str>] = &[None, Some("application/x-www-form-urlencoded")];
    const MSGPACK: &[Option<&str>] = &[Some("application/msgpack"), Some("application/x-msgpack")];
    vec![
        (
            br#"{"time":"2020-02-21T21:20:33.224Z","message":"ConsumeMQTT[id=1] failed","level":"ERROR"}"#
                .to_vec(),
            JSON,
        ),
        (br#"[{"a":1},{"time":"2020-02-21T21:20:33.224Z","b":"x"},{"time":1582320033.5}]"#.to_vec(), JSON),
        (
            b"json=%7B%22a%22%3A1%2C%22time%22%3A%2221%2FFeb%2F2020%3A21%3A20%3A33+%2B0100%22%7D".to_vec(),
            FORM,
        ),
        (msgpack, MSGPACK),
    ]
}

fn http_case() -> impl Strategy<Value = HttpCase> {
    let segment = prop_oneof![
        8 => "[a-z0-9._-]{0,12}",
        1 => "[a-zé %?#*]{0,6}",
        1 => (1000usize..1100).prop_map(|n| "a".repeat(n)),
    ];
    let query = prop::option::of(prop_oneof![
        Just("time=1582320033.5".to_string()),
        Just("json=%7B%22a%22%3A1%7D".to_string()),
        Just("msgpack=%81%A1a%01".to_string()),
        token_soup(HTTP_TOKENS).prop_map(|i| i.text()),
    ]);
    let seeds = http_seeds();
    // A mutant of a seed under a content type that announces it, or any body under any content type.
    let matching: Vec<_> = seeds
        .iter()
        .map(|(body, types)| {
            (mutants(vec![body.clone()], HTTP_TOKENS), proptest::sample::select(*types))
                .prop_map(|(body, content_type)| (content_type, body))
                .boxed()
        })
        .collect();
    let any_body = (
        prop::option::of(proptest::sample::select(CONTENT_TYPES)),
        inputs(seeds.into_iter().map(|(body, _)| body).collect(), HTTP_TOKENS),
    );
    let bodies = prop_oneof![3 => proptest::strategy::Union::new(matching), 1 => any_body];
    (proptest::collection::vec(segment, 0..4), query, 0..TIME_FORMATS.len(), bodies).prop_map(
        |(tag, query, time_format, (content_type, body))| HttpCase {
            tag,
            query,
            content_type,
            time_format,
            body,
        },
    )
}

#[test]
fn log_http_input() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use chaoslab::monitoring::logs::event::{EventTime, LogEvent};
    use chaoslab::monitoring::logs::forward::MAX_TAG_LEN;
    use chaoslab::monitoring::logs::http_input::{HttpInputSettings, HttpStats, router_with};
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    use tower::ServiceExt;

    const PATH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'_');
    const QUERY: &AsciiSet =
        &NON_ALPHANUMERIC.remove(b'=').remove(b'&').remove(b'%').remove(b'+').remove(b'.');
    fn fixed_now() -> EventTime {
        EventTime::new(1_000, 0)
    }

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let apps: Vec<_> = TIME_FORMATS
        .iter()
        .map(|format| {
            // Room for every event a request of at most MAX_MUTATED bytes can carry (one byte each, as
            // msgpack empty maps), so a send never waits for this test to drain the channel.
            let (tx, rx) = tokio::sync::mpsc::channel::<LogEvent>(2 * MAX_MUTATED);
            let stats = Arc::new(HttpStats::default());
            let settings = HttpInputSettings {
                time_format: format.map(str::to_string),
                now: fixed_now,
                ..HttpInputSettings::default()
            };
            (router_with(settings, tx, stats.clone()), Mutex::new(rx), stats)
        })
        .collect();

    fuzz("log_http_input", http_case(), |case| {
        let (app, rx, stats) = &apps[case.time_format];
        let path: Vec<String> = case.tag.iter().map(|s| utf8_percent_encode(s, PATH).to_string()).collect();
        let mut uri = format!("/{}", path.join("/"));
        if let Some(q) = &case.query {
            uri = format!("{uri}?{}", utf8_percent_encode(q, QUERY));
        }
        let mut request = Request::post(&uri);
        if let Some(ct) = case.content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        // A URI no client could send is not this parser's input.
        let Ok(request) = request.body(Body::from(case.body.0.clone())) else { return Ok(()) };
        let before = stats.snapshot().events;
        let status = rt
            .block_on(app.clone().oneshot(request))
            .map(|r| r.status())
            .map_err(|e| TestCaseError::fail(format!("router error: {e}")))?;
        let mut rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
        let mut events = Vec::new();
        while let Ok(event) = rx.try_recv() {
            events.push(event);
        }
        check(matches!(status, StatusCode::OK | StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND), || {
            format!("answered {status} to {uri}")
        })?;
        check(status == StatusCode::OK || events.is_empty(), || {
            format!("{status} but {} events queued", events.len())
        })?;
        check(stats.snapshot().events - before == events.len() as u64, || "events miscounted".to_string())?;
        if status == StatusCode::OK {
            accepted();
        }
        if let Some(first) = events.first() {
            check(
                !first.tag.is_empty() && first.tag.len() <= MAX_TAG_LEN && !first.tag.contains('/'),
                || format!("accepted tag {:?}", first.tag),
            )?;
            check(events.iter().all(|e| e.tag == first.tag), || "one request, several tags".to_string())?;
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------------
// MQTT payloads and topics
// ---------------------------------------------------------------------------------------------------

const MQTT_TOKENS: &[&str] = &[
    "\"device_id\"",
    "\"humidity\"",
    "\"temperature\"",
    "\"time\"",
    "\" None\"",
    "\"2018-03-26T17:19:17.406Z\"",
    "\"2018-02-29T24:00:00.000Z\"",
    "1e309",
    "-0",
    "\"NaN\"",
    "\"inf\"",
    ":",
    ",",
    "{",
    "}",
    "/",
    "+",
    "#",
    "$SYS",
    "\u{0}",
];

#[test]
fn mqtt_payload() {
    use chaoslab::transforms::count_window_average::parse_record;
    use chaoslab::transport::mqtt::topic::{matches, validate_filter, validate_topic_name};
    let seeds: Vec<Vec<u8>> = vec![
        br#"{"device_id": "gnfuv-temp-exp1-55d487b85b-5g2xh", "humidity": "21", "temperature": "40", "time": "2018-03-26T17:19:17.406Z"}"#.to_vec(),
        br#"{"device_id":"d","humidity":21.5,"temperature":-3,"time":"2020-02-21T21:20:33.224Z","extra":[1,{"a":null}]}"#.to_vec(),
        br#"{"device_id": "d", "humidity": " None", "temperature": " None", "time": "2018-03-26T17:19:17.406Z"}"#.to_vec(),
        b"customTopic/sensors/+/data/#".to_vec(),
    ];
    assert!(parse_record(&seeds[0]).is_ok(), "the reference payload must parse");
    fuzz("mqtt_payload", inputs(seeds, MQTT_TOKENS), |input| {
        if let Ok((device, m)) = parse_record(&input.0) {
            accepted();
            check(m.humidity.is_finite() && m.temperature.is_finite() && m.time.len() == 24, || {
                format!("accepted {device:?} {m:?}")
            })?;
        }
        check(parse_record(&input.0) == parse_record(&input.0), || "not deterministic".to_string())?;
        let topic = input.text();
        if validate_topic_name(&topic).is_ok() {
            check(validate_filter(&topic).is_ok(), || {
                "a valid topic name is not a valid filter".to_string()
            })?;
            check(matches(&topic, &topic), || "a topic does not match itself".to_string())?;
            check(matches("#", &topic) != topic.starts_with('$'), || "'#' and a $ topic".to_string())?;
        }
        if validate_filter(&topic).is_ok() {
            let _ = matches(&topic, "customTopic/sensors/a/data/b");
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------------
// GNFUV dataset CSV
// ---------------------------------------------------------------------------------------------------

const CSV_TOKENS: &[&str] = &[
    ",",
    "\n",
    "\r\n",
    "\"",
    "\"\"",
    " None",
    "None",
    "2018-03-26 17:19:17.406089000",
    "2018-02-30 25:00:00",
    "2018-03-26T17:19:17",
    "-",
    ":",
    ".",
    "1e400",
    "NaN",
    "inf",
    "\u{feff}",
    "device_id,humidity,temperature,time\n",
    "gnfuv-temp-exp1-55d487b85b-5g2xh",
    "\u{0}",
];

#[test]
fn dataset_csv() {
    use chaoslab::sources::dataset::{Dataset, DatasetError, MAX_REPORTED_PROBLEMS};
    use chaoslab::sources::synth::{SynthParams, synthesize};
    let synth = synthesize(&SynthParams { rows: 40, devices: 3, none_rows: 3, ..SynthParams::default() });
    let seeds: Vec<Vec<u8>> = vec![
        b"device_id,humidity,temperature,time\n\
          gnfuv-temp-exp1-55d487b85b-5g2xh,21,40,2018-03-26 17:19:17.406089000\n\
          gnfuv-temp-exp1-55d487b85b-5g2xh,21,40,2018-03-26 17:19:31.261505000\n\
          gnfuv-temp-exp1-55d487b85b-xr8kd, None, None,2018-03-26 17:19:45.136245000\n"
            .to_vec(),
        synth.into_bytes(),
    ];
    for seed in &seeds {
        let parsed = Dataset::from_reader("seed.csv", seed.as_slice());
        assert!(parsed.is_ok(), "seed: {parsed:?}");
    }
    fuzz("dataset_csv", inputs(seeds, CSV_TOKENS), |input| {
        // Finding 3, fixed: after a CRLF line ending the csv crate's line numbers fell one behind
        // (BurntSushi/rust-csv#395); the reader now counts lines itself, CRs included.
        match Dataset::from_reader("fuzz.csv", input.0.as_slice()) {
            Ok(dataset) => {
                accepted();
                check(!dataset.rows.is_empty(), || "accepted without rows".to_string())?;
                check(dataset.rows.iter().all(|r| !r.device_id.is_empty()), || {
                    "a row without a device".to_string()
                })?;
                check(dataset.rows.iter().all(|r| r.line >= 2), || "a row on the header's line".to_string())?;
                check(dataset.rows.windows(2).all(|w| w[0].line < w[1].line), || {
                    "rows out of order".to_string()
                })
            }
            Err(DatasetError::Rows { problems, total, .. }) => {
                check(!problems.is_empty() && problems.len() <= MAX_REPORTED_PROBLEMS.min(total), || {
                    format!("{} problems shown of {total}", problems.len())
                })?;
                check(problems.iter().all(|p| p.line >= 2), || {
                    format!("a row problem before line 2: {problems:?}")
                })
            }
            Err(e) => {
                check(e.to_string().starts_with("fuzz.csv"), || format!("error does not name the file: {e}"))
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------------
// Flow TOML
// ---------------------------------------------------------------------------------------------------

const TOML_TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    " = ",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "\n",
    "#",
    ".",
    ",",
    "{",
    "}",
    "extends = \"reference.toml\"\n",
    "extends = \"process-mining.toml\"\n",
    "[components.X]\nkind = \"",
    "kind = \"",
    "sensor-replay",
    "mqtt-broker",
    "count-window-average",
    "document-index",
    "kafka-cluster",
    "inputs = [\"",
    "output = \"",
    "1970-01-01T00:00:00Z",
    "inf",
    "nan",
    "-0",
    "1_000",
    "0x10",
    "true",
    "\"30s\"",
    "\"-1s\"",
    "\"18446744073709551616ms\"",
    "\\u0000",
];

#[test]
fn flow_toml() {
    use chaoslab::catalog::parse_flow;
    let names = ["flows/reference.toml", "flows/process-mining.toml", "flows/reference-fixed.toml"];
    let seeds: Vec<Vec<u8>> = names.iter().map(|n| repo_file(n)).collect();
    for (name, seed) in names.iter().zip(&seeds) {
        let parsed = parse_flow(&String::from_utf8_lossy(seed), name, None);
        assert!(parsed.is_ok(), "{name}: {:?}", parsed.err());
    }
    fuzz("flow_toml", inputs(seeds, TOML_TOKENS), |input| {
        match parse_flow(&input.text(), "fuzz.toml", None) {
            Ok(_) => {
                accepted();
                Ok(())
            }
            Err(e) => placed(&e, "fuzz.toml"),
        }
    });
}

// ---------------------------------------------------------------------------------------------------
// Chaos Toolkit experiments (JSON and YAML)
// ---------------------------------------------------------------------------------------------------

const EXPERIMENT_TOKENS: &[&str] = &[
    "title",
    "description",
    "method",
    "steady-state-hypothesis",
    "rollbacks",
    "probes",
    "provider",
    "type",
    "python",
    "http",
    "process",
    "module",
    "func",
    "arguments",
    "tolerance",
    "pauses",
    "before",
    "after",
    "controls",
    "configuration",
    "secrets",
    "${",
    "}",
    "$.",
    "[0]",
    "env",
    "key",
    "timeout",
    "background",
    "ref",
    "action",
    "probe",
    "name",
    "range",
    "regex",
    "jsonpath",
    "target",
    "expect",
    "status",
];

/// Providers that know every native function's signature without a target, as `chaoslab experiment
/// validate` uses them.
fn offline_providers() -> chaoslab::chaos::providers::NativeProviders {
    use chaoslab::chaos::providers::{Backend, NativeProviders};
    let client = chaoslab::orders::http::ApiClient::remote("http://127.0.0.1:8080", Duration::from_secs(30))
        .expect("a client for a fixed URL");
    NativeProviders::new(Backend::Remote { client, token: None })
}

fn experiment_seeds() -> Vec<(String, Vec<u8>)> {
    let dir = repo_path("flows/experiments");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            (p.display().to_string(), std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        })
        .collect()
}

fn experiment_target(target: &str, file: &'static str, seeds: Vec<Vec<u8>>, tokens: &'static [&'static str]) {
    use chaoslab::chaos::experiment::validate::check_text;
    let providers = offline_providers();
    fuzz(target, inputs(seeds, tokens), |input| {
        let text = input.text();
        let problems = check_text(file, &text, &providers);
        if !problems.has_errors() {
            accepted();
        }
        // Finding 1: a YAML indentation error that serde_norway takes for a second document gets the line
        // where that document starts (`regression_yaml_document_line`); where no such line shows in the
        // text (a mutant's odd bytes) it stays unplaced, so it is let through here.
        let loose: Vec<String> =
            unplaced(problems.all()).into_iter().filter(|p| !p.contains("more than one document")).collect();
        check(loose.is_empty(), || format!("problems without a line or key: {loose:?}"))?;
        check(problems.all().iter().all(|p| p.file == file), || "a problem names another file".to_string())
    });
}

#[test]
fn experiment_yaml() {
    use chaoslab::chaos::experiment::validate::check_text;
    let providers = offline_providers();
    let seeds = experiment_seeds();
    for (name, text) in &seeds {
        let problems = check_text(name, &String::from_utf8_lossy(text), &providers);
        let errors: Vec<String> = problems.errors().map(ToString::to_string).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
    static TOKENS: std::sync::LazyLock<Vec<&'static str>> =
        std::sync::LazyLock::new(|| [YAML_TOKENS, EXPERIMENT_TOKENS].concat());
    experiment_target("experiment_yaml", "fuzz.yaml", seeds.into_iter().map(|(_, t)| t).collect(), &TOKENS);
}

#[test]
fn experiment_json() {
    use chaoslab::chaos::experiment::load::{Format, parse};
    // The shipped experiments as JSON, pretty and compact.
    let mut seeds = Vec::new();
    for (name, text) in experiment_seeds() {
        let value = parse(&String::from_utf8_lossy(&text), Format::Yaml, Path::new(&name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        seeds.push(serde_json::to_vec_pretty(&value).expect("JSON of a JSON value"));
        seeds.push(serde_json::to_vec(&value).expect("JSON of a JSON value"));
    }
    static TOKENS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        [
            &["{", "}", "[", "]", ",", ":", "\"", "\\\"", "\\u0000", "\\ud800", "null", "1e999", "-0", "NaN"]
                [..],
            EXPERIMENT_TOKENS,
        ]
        .concat()
    });
    experiment_target("experiment_json", "fuzz.json", seeds, &TOKENS);
}

// ---------------------------------------------------------------------------------------------------
// Chaos Mesh YAML
// ---------------------------------------------------------------------------------------------------

const MESH_TOKENS: &[&str] = &[
    "apiVersion: chaos-mesh.org/v1alpha1\n",
    "kind: ",
    "PodChaos",
    "NetworkChaos",
    "StressChaos",
    "Schedule",
    "Workflow",
    "StatusCheck",
    "IOChaos",
    "metadata:\n  name: x\n",
    "spec:\n",
    "selector:\n",
    "labelSelectors:\n",
    "namespaces: [kafka]\n",
    "mode: ",
    "one",
    "all",
    "fixed-percent",
    "value: '50'\n",
    "duration: ",
    "30s",
    "-1s",
    "999999999h",
    "schedule: '*/2 * * * *'\n",
    "@every 1s",
    "60 * * * * *",
    "deadline: ",
    "templates:\n",
    "templateType: ",
    "children: [",
    "action: ",
    "pod-failure",
    "delay",
    "latency: 20ms\n",
    "jitter: ",
    "correlation: '100'\n",
    "bandwidth",
    "rate: 1mbit\n",
    "concurrencyPolicy: Forbid\n",
    "historyLimit: 0\n",
];

#[test]
fn mesh_yaml() {
    use chaoslab::catalog::{PROCESS_MINING_FLOW, REFERENCE_FLOW, parse_flow};
    use chaoslab::config::Problems;
    use chaoslab::mesh::load::load_text;
    use chaoslab::mesh::select::pods_of_flow;
    let mut pods = Vec::new();
    for (name, text) in [("process-mining.toml", PROCESS_MINING_FLOW), ("reference.toml", REFERENCE_FLOW)] {
        let flow = parse_flow(text, name, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        pods.extend(pods_of_flow(&flow));
    }
    let mut seeds: Vec<Vec<u8>> =
        ["flows/mesh/miner-pod-failure.yaml", "flows/mesh/miner-failures-under-delay.yaml"]
            .iter()
            .map(|n| repo_file(n))
            .collect();
    seeds.push(
        b"apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: delay\n  namespace: kafka\nspec:\n  action: netem\n  mode: all\n  selector:\n    namespaces: [kafka]\n  delay: {latency: 1.5s, jitter: 10ms, correlation: '25'}\n  loss: {loss: '5'}\n  duration: 2m\n---\napiVersion: chaos-mesh.org/v1alpha1\nkind: StressChaos\nmetadata: {name: cpu}\nspec:\n  mode: fixed-percent\n  value: '50'\n  selector: {namespaces: [kafka]}\n  stressors: {cpu: {workers: 2, load: 80}}\n"
            .to_vec(),
    );
    seeds.push(
        br#"{"apiVersion":"chaos-mesh.org/v1alpha1","kind":"PodChaos","metadata":{"name":"kill"},"spec":{"action":"pod-kill","mode":"one","selector":{"labelSelectors":{"app":"heuristics-miner-flink"}}}}"#
            .to_vec(),
    );
    for (i, seed) in seeds.iter().enumerate() {
        let mut problems = Problems::new();
        let loaded = load_text("seed.yaml", &String::from_utf8_lossy(seed), Some(&pods), &mut problems);
        let errors: Vec<String> = problems.errors().map(ToString::to_string).collect();
        assert!(errors.is_empty() && !loaded.is_empty(), "mesh seed {i}: {errors:?}");
    }
    static TOKENS: std::sync::LazyLock<Vec<&'static str>> =
        std::sync::LazyLock::new(|| [YAML_TOKENS, MESH_TOKENS].concat());
    fuzz("mesh_yaml", inputs(seeds, &TOKENS), |input| {
        let text = input.text();
        let mut problems = Problems::new();
        let loaded = load_text("fuzz.yaml", &text, Some(&pods), &mut problems);
        if !loaded.is_empty() && !problems.has_errors() {
            accepted();
        }
        let loose = unplaced(problems.all());
        check(loose.is_empty(), || format!("problems without a line or key: {loose:?}"))?;
        check(problems.all().iter().all(|p| p.file.starts_with("fuzz.yaml")), || {
            "another file named".to_string()
        })?;
        let mut again = Problems::new();
        let reloaded = load_text("fuzz.yaml", &text, Some(&pods), &mut again);
        check(loaded.len() == reloaded.len() && problems.all() == again.all(), || {
            "not deterministic".to_string()
        })
    });
}

// ---------------------------------------------------------------------------------------------------
// PromQL rule files and PromQL expressions
// ---------------------------------------------------------------------------------------------------

/// A small TSDB: counters with a reset, gauges, NaN, ±Inf and a stale marker, two jobs.
fn tsdb() -> chaoslab::monitoring::tsdb::Tsdb {
    use chaoslab::monitoring::tsdb::{Labels, METRIC_NAME, Tsdb, stale_nan};
    let mut db = Tsdb::new(Duration::from_secs(3600));
    /// A metric name, its labels and its samples, 10 s apart from t = 0.
    type Series<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [f64]);
    let series: &[Series<'_>] = &[
        ("up", &[("job", "mqtt"), ("instance", "a:1")], &[1.0, 1.0, 0.0, 1.0]),
        ("broker_uptime", &[("job", "mqtt"), ("instance", "a:1")], &[1.0, 11.0, 21.0, 2.0, 12.0]),
        (
            "mqtt_received_data_packets_total",
            &[("job", "node-red"), ("instance", "b:2")],
            &[0.0, 5.0, 5.0, 9.0],
        ),
        ("c_total", &[("job", "a"), ("instance", "i1")], &[0.0, 10.0, 20.0, 30.0]),
        ("c_total", &[("job", "b"), ("instance", "i1")], &[3.0, 2.0, 1.0, 0.0]),
        ("g", &[("job", "a")], &[f64::NAN, f64::INFINITY, -1.5, f64::NEG_INFINITY, 1e308]),
        ("g", &[("job", "b")], &[0.0, -0.0, stale_nan(), 4.0]),
    ];
    for (name, pairs, values) in series {
        for (i, v) in values.iter().enumerate() {
            let mut labels: Labels = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            labels.insert(METRIC_NAME.to_string(), name.to_string());
            db.append(labels, i as i64 * 10_000, *v).expect("a valid sample");
        }
    }
    db
}

/// Evaluation times: before the data, inside it, after it, and far away.
const EVAL_TIMES: &[i64] = &[-1, 0, 25_000, 60_000, 400_000, 1_582_320_033_000];

const RULE_TOKENS: &[&str] = &[
    "groups:\n",
    "  - name: ",
    "    rules:\n",
    "      - alert: ",
    "      - record: ",
    "        expr: ",
    "        for: ",
    "keep_firing_for: ",
    "labels:\n",
    "annotations:\n",
    "interval: ",
    "30s",
    "0s",
    "1y",
    "-5m",
    "limit: 1\n",
    "query_offset: 1m\n",
    "{{ $labels.instance }}",
    "{{ $value }}",
    "{{ humanize $value }}",
    "{{",
    "}}",
    "{{ .Labels }}",
    "increase(",
    "rate(",
    "[30s]",
    "[5m:1m]",
    ")",
    " == 0",
    " > bool 1",
    "sum by (job) (",
    "up",
    "{job=\"mqtt\"}",
    "{__name__=~\".+\"}",
    " offset 1m",
    " @ 100",
    "histogram_quantile(0.9, ",
    "topk(2, ",
    "absent(",
    "vector(1)",
];

#[test]
fn rule_files() {
    use chaoslab::monitoring::rules::{RuleSet, RulesError};
    let seeds: Vec<Vec<u8>> =
        ["flows/rules/mqtt.yml", "flows/rules/nodered.yml"].iter().map(|n| repo_file(n)).collect();
    for seed in &seeds {
        let parsed = RuleSet::parse(&String::from_utf8_lossy(seed), "seed.yml");
        assert!(parsed.is_ok(), "seed: {:?}", parsed.err());
    }
    static TOKENS: std::sync::LazyLock<Vec<&'static str>> =
        std::sync::LazyLock::new(|| [YAML_TOKENS, RULE_TOKENS].concat());
    let db = tsdb();
    fuzz("rule_files", inputs(seeds, &TOKENS), |input| match RuleSet::parse(&input.text(), "fuzz.yml") {
        Ok(mut rules) => {
            accepted();
            let mut db = db.clone();
            for t in EVAL_TIMES {
                let _ = rules.evaluate(&mut db, *t);
                let _ = rules.next_due(*t);
            }
            let _ = rules.active_alerts();
            Ok(())
        }
        Err(RulesError::Invalid(e)) => placed(&e, "fuzz.yml"),
        Err(e) => Err(TestCaseError::fail(format!("unexpected error kind: {e}"))),
    });
}

/// PromQL text from a small grammar: selectors, literals, operators, aggregations, calls, ranges,
/// offsets, subqueries, `@` — the supported constructs and some that must be refused by name.
fn promql_expr() -> impl Strategy<Value = String> {
    let name = proptest::sample::select(&["up", "c_total", "g", "broker_uptime", "nothing", "__name__"][..]);
    let matcher = prop::option::of(proptest::sample::select(
        &[
            r#"{job="a"}"#,
            r#"{job!="b"}"#,
            r#"{instance=~"i.*"}"#,
            r#"{job!~"(a"}"#,
            r#"{__name__=~"c_.*|g"}"#,
            "{}",
        ][..],
    ));
    let selector = (name, matcher).prop_map(|(n, m)| format!("{n}{}", m.unwrap_or("")));
    let number = proptest::sample::select(
        &["0", "1", "-1", "1.5", "1e308", "-1e308", "NaN", "Inf", "-Inf", "0x10", "5m", "1e-320"][..],
    )
    .prop_map(str::to_string);
    let leaf = prop_oneof![4 => selector, 2 => number, 1 => Just("\"s\"".to_string())];
    let range = proptest::sample::select(&["[30s]", "[5m]", "[1s]", "[0s]", "[1h]", "[5m:1m]"][..]);
    let offset = prop::option::of(proptest::sample::select(
        &[" offset 1m", " offset -5m", " @ 100", " @ start()"][..],
    ));
    leaf.prop_recursive(4, 48, 3, move |inner| {
        let binop = proptest::sample::select(
            &[
                "+",
                "-",
                "*",
                "/",
                "%",
                "^",
                "==",
                "!=",
                ">",
                "<",
                ">=",
                "<=",
                "== bool",
                "> bool",
                "and",
                "or",
                "unless",
                "atan2",
                "+ on(job)",
                "* ignoring(instance)",
                "/ on(job) group_left",
                "- on() ",
            ][..],
        );
        let agg = proptest::sample::select(
            &[
                "sum",
                "avg",
                "min",
                "max",
                "count",
                "stddev",
                "quantile(0.5,",
                "topk(2,",
                "bottomk(1,",
                "count_values(\"v\",",
            ][..],
        );
        let grouping =
            prop::option::of(proptest::sample::select(&[" by (job)", " without (instance)", " by ()"][..]));
        let range_fn = proptest::sample::select(&chaoslab::monitoring::promql::SUPPORTED_FUNCTIONS[..14]);
        let fn1 = proptest::sample::select(
            &["abs", "ceil", "floor", "round", "absent", "scalar", "vector", "exp", "sqrt", "sort"][..],
        );
        prop_oneof![
            (inner.clone(), binop, inner.clone()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            (agg, grouping, inner.clone()).prop_map(|(agg, g, e)| {
                let g = g.unwrap_or("");
                if agg.ends_with(',') { format!("{agg} {e}){g}") } else { format!("{agg}{g} ({e})") }
            }),
            (range_fn, inner.clone(), range.clone(), offset.clone())
                .prop_map(|(f, e, r, o)| format!("{f}({e}{r}{})", o.unwrap_or(""))),
            (fn1, inner.clone()).prop_map(|(f, e)| format!("{f}({e})")),
            (proptest::sample::select(&["clamp_min", "clamp_max", "round"][..]), inner.clone(), -3i32..3)
                .prop_map(|(f, e, n)| format!("{f}({e}, {n})")),
            inner.clone().prop_map(|e| format!("({e})")),
            inner.clone().prop_map(|e| format!("-{e}")),
            (inner.clone(), offset.clone()).prop_map(|(e, o)| format!("{e}{}", o.unwrap_or(""))),
            Just("time()".to_string()),
        ]
    })
}

const PROMQL_TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "=",
    "=~",
    "!=",
    "\"",
    "'",
    "`",
    ",",
    " by ",
    " on ",
    " offset ",
    "@",
    ":",
    "5m",
    "rate",
    "sum",
    "up",
    "bool",
    "group_left",
    "1e999",
    "0x",
    "\\",
    "#",
    "\n",
];

#[test]
fn promql() {
    use chaoslab::monitoring::promql::{Value, check_supported, eval_instant, parse};
    let db = tsdb();
    let strategy = prop_oneof![
        4 => promql_expr(),
        2 => mutants(
            vec![
                b"increase(broker_uptime{job=\"mqtt\"}[30s]) == 0".to_vec(),
                b"sum by (job) (rate(c_total[1m])) / on(job) max by (job) (up) > bool 0.5".to_vec(),
                b"topk(1, clamp_min(g, -1)) or absent(nothing{job=\"x\"})".to_vec(),
            ],
            PROMQL_TOKENS,
        )
        .prop_map(|i| i.text()),
        1 => token_soup(PROMQL_TOKENS).prop_map(|i| i.text()),
    ];
    fuzz("promql", strategy, |text| {
        let parsed = parse(&text);
        check(format!("{parsed:?}") == format!("{:?}", parse(&text)), || {
            "parse not deterministic".to_string()
        })?;
        let Ok(expr) = parsed else { return Ok(()) };
        if check_supported(&expr).is_err() {
            return Ok(());
        }
        accepted();
        for t in EVAL_TIMES {
            let value = eval_instant(&expr, &db, *t);
            check(format!("{value:?}") == format!("{:?}", eval_instant(&expr, &db, *t)), || {
                "evaluation not deterministic".to_string()
            })?;
            if let Ok(Value::Vector(samples)) = &value {
                let mut labels: Vec<_> = samples.iter().map(|s| &s.labels).collect();
                labels.sort();
                labels.dedup();
                check(labels.len() == samples.len(), || {
                    format!("an instant vector with a repeated label set at t={t}: {samples:?}")
                })?;
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------------
// Knowledge graph YAML
// ---------------------------------------------------------------------------------------------------

const GRAPH_TOKENS: &[&str] = &[
    "components:\n",
    "incidents:\n",
    "signals:\n",
    "compositeSignals:\n",
    "  - name: ",
    "    owner: ",
    "    predecessorOf: [",
    "    component: ",
    "    threshold: ",
    "    coolDownSec: ",
    "    activationThreshold: ",
    "    parts:\n",
    "      - signal: ",
    "        component: ",
    "    indicates: [",
    "    description: ",
    "MQTT_BROKER",
    "NIFI",
    "SENSOR",
    "-1",
    "0",
    "2147483648",
    "1e309",
    ".nan",
    "0.5",
];

#[test]
fn knowledge_graph_yaml() {
    use chaoslab::reasoning::graph::KnowledgeGraph;
    let seeds = vec![repo_file("flows/knowledge.yaml")];
    let graph = KnowledgeGraph::from_yaml_str(&String::from_utf8_lossy(&seeds[0]), "knowledge.yaml");
    assert!(graph.is_ok(), "flows/knowledge.yaml: {:?}", graph.err());
    static TOKENS: std::sync::LazyLock<Vec<&'static str>> =
        std::sync::LazyLock::new(|| [YAML_TOKENS, GRAPH_TOKENS].concat());
    fuzz("knowledge_graph_yaml", inputs(seeds, &TOKENS), |input| {
        use chaoslab::reasoning::graph::GraphError;
        match KnowledgeGraph::from_yaml_str(&input.text(), "fuzz.yaml") {
            Ok(graph) => {
                accepted();
                // What was accepted writes back and reads again to the same graph.
                let yaml = graph.to_yaml().map_err(|e| TestCaseError::fail(format!("to_yaml: {e}")))?;
                let again = KnowledgeGraph::from_yaml_str(&yaml, "written.yaml")
                    .map_err(|e| TestCaseError::fail(format!("its own YAML is refused: {e}\n{yaml}")))?;
                let yaml2 = again.to_yaml().map_err(|e| TestCaseError::fail(format!("to_yaml: {e}")))?;
                check(yaml == yaml2, || format!("round trip changed the graph:\n{yaml}\n---\n{yaml2}"))
            }
            Err(GraphError::Load(e)) => placed(&e, "fuzz.yaml"),
            Err(e) => Err(TestCaseError::fail(format!("unexpected error kind: {e}"))),
        }
    });
}

// ---------------------------------------------------------------------------------------------------
// Alertmanager webhook JSON (the ingestion service)
// ---------------------------------------------------------------------------------------------------

/// A producer that keeps what it is given.
#[derive(Default)]
struct KeepingProducer(Mutex<Vec<bytes::Bytes>>);

impl chaoslab::bus::backend::BusProducer for KeepingProducer {
    fn send<'a>(
        &'a self,
        topic: &'a str,
        _partition: Option<u32>,
        _key: Option<bytes::Bytes>,
        value: bytes::Bytes,
        _timestamp_ms: i64,
    ) -> futures::future::BoxFuture<'a, Result<chaoslab::bus::RecordMeta, chaoslab::bus::BusError>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(value);
        Box::pin(async move {
            Ok(chaoslab::bus::RecordMeta { topic: topic.to_string(), partition: 0, offset: None })
        })
    }
}

const WEBHOOK_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"alerts\"",
    "\"labels\"",
    "\"alertname\"",
    "\"pipeline_component\"",
    "\"annotations\"",
    "\"summary\"",
    "\"status\"",
    "\"firing\"",
    "\"resolved\"",
    "\"startsAt\"",
    "null",
    "1e999",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"MQTT_BROKER\"",
    "\"a b\"",
    "\"ünïcödé\"",
];

#[test]
fn webhook_json() {
    use chaoslab::kernel::clock::Clock;
    use chaoslab::kernel::metrics::Metrics;
    use chaoslab::kernel::seed::Seed;
    use chaoslab::kernel::trace::Trace;
    use chaoslab::monitoring::metrics_store::{IngestError, IngestStats, Ingestion};
    use chaoslab::reasoning::signal::parse_signal_record;
    use chaoslab::transport::link::Link;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    let producer = Arc::new(KeepingProducer::default());
    let ingestion = rt.block_on(async {
        let clock = Clock::sim(chrono::DateTime::from_timestamp(1_582_320_033, 0).expect("a valid epoch"));
        let metrics = Metrics::new().expect("metrics");
        let up = || Arc::new(AtomicBool::new(true));
        let link = Link::new(
            "ingestion-service",
            "KAFKA",
            16,
            Seed(0),
            &metrics,
            Trace::in_memory(clock.clone()),
            (up(), up()),
        );
        let stats = IngestStats::register(&metrics.scope("PROMETHEUS")).expect("the ingestion counters");
        Ingestion::new(producer.clone(), link, clock, stats)
    });
    let alert = |name: &str, component: &str| {
        serde_json::json!({
            "status": "firing",
            "labels": {"alertname": name, "instance": "chaoslab:8080", "job": "mqtt", "pipeline_component": component, "severity": "critical"},
            "annotations": {"summary": "MQTT not reachable", "description": "no increase for half a minute"},
            "startsAt": "2020-02-21T21:20:33.224Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://chaoslab:8080/graph?g0.expr=up",
            "fingerprint": "8a3f0c5e1b2d4f67"
        })
    };
    let payload = |alerts: Vec<serde_json::Value>| {
        serde_json::to_vec_pretty(&serde_json::json!({
            "receiver": "ingestion-service", "status": "firing", "alerts": alerts,
            "groupLabels": {"alertname": "MqttInstanceDownAlert"}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093", "version": "4",
            "groupKey": "{}:{alertname=\"MqttInstanceDownAlert\"}", "truncatedAlerts": 0
        }))
        .expect("JSON of a JSON value")
    };
    let seeds = vec![
        payload(vec![alert("MqttInstanceDownAlert", "MQTT_BROKER")]),
        payload(vec![
            alert("NotReceivingSensorData", "NODE-RED"),
            alert("MqttInstanceDownAlert", "MQTT_BROKER"),
        ]),
        payload(vec![]),
    ];
    for seed in &seeds {
        let value: serde_json::Value = serde_json::from_slice(seed).expect("a JSON seed");
        let n = rt.block_on(ingestion.ingest(&value));
        assert!(n.is_ok(), "seed refused: {:?}", n.err());
    }
    fuzz("webhook_json", inputs(seeds, WEBHOOK_TOKENS), |input| {
        // As `POST /alerts` reads its body.
        let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&input.0) else { return Ok(()) };
        producer.0.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let result = rt.block_on(ingestion.ingest(&payload));
        let published = std::mem::take(&mut *producer.0.lock().unwrap_or_else(PoisonError::into_inner));
        match result {
            Ok(n) => {
                accepted();
                let alerts = payload.get("alerts").and_then(serde_json::Value::as_array).map_or(0, Vec::len);
                check(n == alerts && published.len() == n, || format!("{n} signals of {alerts} alerts"))?;
                for record in &published {
                    let value: serde_json::Value = serde_json::from_slice(record)
                        .map_err(|e| TestCaseError::fail(format!("a published signal is not JSON: {e}")))?;
                    check(parse_signal_record(&value).is_ok(), || {
                        format!("the reasoner cannot read {value}")
                    })?;
                }
                Ok(())
            }
            Err(IngestError::Invalid(why)) => {
                check(published.is_empty(), || "refused, yet published".to_string())?;
                check(why.starts_with("alerts[") || why.contains("`alerts`"), || {
                    format!("refusal names no place: {why}")
                })
            }
            Err(e) => Err(TestCaseError::fail(format!("unexpected error kind: {e}"))),
        }
    });
}

// ---------------------------------------------------------------------------------------------------
// The order API's body decoder
// ---------------------------------------------------------------------------------------------------

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\\"",
    "\\u0000",
    "\\ud800",
    "\\udc00",
    "\\ud83d\\ude00",
    "null",
    "true",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-0",
    "0.0",
    "1E+2",
    "01",
    "\"user_id\"",
    "\"pokemon\"",
    "\"country\"",
    "\"price\"",
    "\"state\"",
    "\u{feff}",
    "\u{0}",
    " ",
    "\t",
    "\r\n",
];

/// Whether every number of `v` is an integer serde_json holds exactly (no float, nothing out of range).
fn integers_only(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.is_i64() || n.is_u64(),
        serde_json::Value::Array(items) => items.iter().all(integers_only),
        serde_json::Value::Object(map) => map.values().all(integers_only),
        _ => true,
    }
}

/// Whether `text` holds a run of more than 4300 digits (Python's `int` limit).
fn has_huge_int(text: &[u8]) -> bool {
    text.split(|b| !b.is_ascii_digit()).any(|run| run.len() > 4300)
}

#[test]
fn order_body_json() {
    use chaoslab::orders::order_api::errors::{ApiError, Problems};
    use chaoslab::orders::order_api::pyjson::{DecodeError, loads};
    use chaoslab::orders::order_api::request::{Body, is_json, json_body, new_order, new_state};
    let order = br#"{"user_id": 1, "pokemon": "pikachu", "country": "Chile", "price": 25}"#;
    let utf16: Vec<u8> = String::from_utf8_lossy(order).encode_utf16().flat_map(u16::to_le_bytes).collect();
    let seeds: Vec<Vec<u8>> = vec![
        order.to_vec(),
        br#"{"state": "approved"}"#.to_vec(),
        br#"{"user_id": 1e2, "pokemon": "\u00e9\ud83d\ude00", "country": null, "price": NaN, "user_id": -0, "x": [1, [2, {"y": Infinity}]]}"#.to_vec(),
        [&b"\xef\xbb\xbf"[..], order].concat(),
        [&b"\xff\xfe"[..], &utf16].concat(),
        utf16,
        format!("{}1{}", "[".repeat(970), "]".repeat(970)).into_bytes(),
    ];
    let content_types = prop::option::of(proptest::sample::select(
        &[
            "application/json",
            "application/merge-patch+json",
            "APPLICATION/JSON; charset=utf-8",
            "text/plain",
            "",
            "application/jsonx",
        ][..],
    ));
    fuzz("order_body_json", (content_types, inputs(seeds, JSON_TOKENS)), |(content_type, input)| {
        let bytes = &input.0;
        let decoded = loads(bytes);
        if decoded.is_ok() {
            accepted();
        }
        // Debug text, as NaN is not equal to itself.
        check(format!("{decoded:?}") == format!("{:?}", loads(bytes)), || {
            "loads not deterministic".to_string()
        })?;
        if let Err(DecodeError::Invalid { pos, .. }) = &decoded {
            check(*pos <= bytes.len(), || format!("error position {pos} past the end"))?;
        }
        // Whatever strict JSON serde_json reads, Python's json.loads reads too, to the same value.
        if let (Ok(text), Ok(value)) =
            (std::str::from_utf8(bytes), serde_json::from_slice::<serde_json::Value>(bytes))
        {
            match &decoded {
                Ok(py) if integers_only(&value) => {
                    check(py.to_json() == value, || {
                        format!("loads({text:?}) = {:?}, serde_json: {value}", py.to_json())
                    })?;
                }
                Ok(_) => {}
                Err(DecodeError::Other { .. }) if has_huge_int(bytes) => {}
                Err(e) => return Err(TestCaseError::fail(format!("serde_json reads it, loads says {e:?}"))),
            }
        }
        match json_body(content_type, bytes) {
            Ok(body) => {
                check(
                    !matches!(body, Body::Missing)
                        || bytes.is_empty()
                        || decoded == Ok(chaoslab::orders::order_api::pyjson::PyValue::Null),
                    || "a non-empty body read as missing".to_string(),
                )?;
                check(is_json(content_type) || bytes.is_empty() || matches!(body, Body::Raw(_)), || {
                    "a non-JSON content type parsed as JSON".to_string()
                })?;
                let _ = new_order(&body, Problems::default());
                let _ = new_state(&body, Problems::default());
                Ok(())
            }
            Err(ApiError::Invalid(errors)) => check(
                errors.len() == 1 && errors[0].kind == "json_invalid" && errors[0].loc.len() == 2,
                || format!("a decode error without its place: {errors:?}"),
            ),
            Err(ApiError::BadBody) => Ok(()),
            Err(e) => Err(TestCaseError::fail(format!("unexpected error: {e:?}"))),
        }
    });
}

// ---------------------------------------------------------------------------------------------------
// Regressions: inputs the targets once failed on
// ---------------------------------------------------------------------------------------------------

/// Finding 1 (fixed): `  a: 1\nb: 2\n` is an indentation error; the experiment loader reported "more
/// than one document" without a line, though its errors promise "file, line and column". It now names
/// the line where the second document starts.
#[test]
fn regression_yaml_document_line() {
    use chaoslab::chaos::experiment::validate::check_text;
    let problems = check_text("x.yaml", "  a: 1\nb: 2\n", &offline_providers());
    let lines: Vec<Option<usize>> = problems.errors().map(|p| p.line).collect();
    assert_eq!(lines, [Some(2)], "{:?}", problems.all());
}

/// Finding 2 (fixed in `chaoslab::monitoring::promql::parse`): promql-parser 0.11 panicked on a number
/// used as a duration that does not fit one (`Duration::from_secs_f64`); the minimal input found was
/// `: offset 1e999!=#(`. Rule files, `/api/v1/query`, Chaos Mesh status checks, experiment probes and
/// campaign specs all parse PromQL from outside.
#[test]
fn regression_promql_duration_out_of_range() {
    use chaoslab::monitoring::promql::{PromqlError, parse};
    for text in [
        ": offset 1e999!=#(",
        "0 offset 1e999",
        "up offset 1e20",
        "up[1e999]",
        "up offset NaN",
        "up offset Inf",
        "up[5m:1e999]",
    ] {
        assert!(matches!(parse(text), Err(PromqlError::Parse { .. })), "{text}");
    }
    assert!(parse("up offset 1e9").is_ok());
}

/// Finding 3 (fixed): with CRLF line endings every row after the first line break was numbered one line
/// too low (the first row got the header's line 1), so a problem in a Windows-made CSV pointed at the line
/// above.
#[test]
fn regression_dataset_crlf_lines() {
    use chaoslab::sources::dataset::{Dataset, DatasetError};
    let ok =
        b"device_id,humidity,temperature,time\r\nd,1,2,2018-03-26 17:19:17\r\nd,1,2,2018-03-26 17:19:18\r\n";
    let dataset = Dataset::from_reader("crlf.csv", &ok[..]).expect("a valid file");
    assert_eq!(dataset.rows.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 3]);
    let bad =
        b"device_id,humidity,temperature,time\r\nd,1,2,2018-03-26 17:19:17\r\nd,x,2,2018-03-26 17:19:18\r\n";
    match Dataset::from_reader("crlf.csv", &bad[..]) {
        Err(DatasetError::Rows { problems, .. }) => assert_eq!(problems[0].line, 3, "{problems:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn harness_edits_stay_bounded() {
    let seed = vec![b'a'; MAX_MUTATED];
    let out = apply(&seed, &[Edit::Duplicate(0, 255, 0), Edit::Insert(3, vec![0; 15])], &["x"]);
    assert_eq!(out.len(), MAX_MUTATED);
    let mut sink = Vec::new();
    write!(sink, "{:?}", Input(b"a\n\xff".to_vec())).expect("write to a Vec");
    assert_eq!(sink, b"b\"a\\n\\xff\" (3 bytes)");
}
