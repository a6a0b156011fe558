//! A JSON decoder that behaves like CPython 3.11's `json.loads(body_bytes)` (its C scanner), as FastAPI
//! 0.111 calls it on a request body: the same values and, on bad input, the same `JSONDecodeError` message
//! and position (FastAPI's `json_invalid` 422 answer shows them as `ctx.error` and `loc[1]`).
//!
//! Where Rust cannot be exact:
//! - a lone surrogate (`"\ud800"`, or one that `surrogatepass` decoded from the bytes) becomes U+FFFD in a
//!   [`PyValue::Str`] or a key; Python keeps the surrogate code point. Positions are not affected, and keys
//!   are compared before the replacement (`{"\ud800":1,"\udc00":2}` keeps two members).
//! - Python's `RecursionError` depends on the Python stack already in use; [`MAX_DEPTH`] is measured.
//! - The `ValueError` for an integer over 4300 digits lacks Python's "…: value has N digits; …" tail
//!   (FastAPI never shows it: it answers 400).

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

/// Nested arrays and objects that parse; one more is Python's `RecursionError`. CPython's limit is the
/// recursion limit (1000) minus the frames already in use: measured 967 for FastAPI 0.111.0 under
/// `uvicorn app.main:app` (0.30.1, httptools, uvloop), as the contract was recorded (969 with `--reload`).
/// The parser is iterative, so this cap only mirrors Python; it does not protect the stack.
pub const MAX_DEPTH: usize = 967;

/// Python's default `sys.get_int_max_str_digits()`.
const MAX_INT_DIGITS: usize = 4300;

/// The `RecursionError` messages, for an object and for an array.
const RECURSION: [&str; 2] = [
    "maximum recursion depth exceeded while decoding a JSON object from a unicode string",
    "maximum recursion depth exceeded while decoding a JSON array from a unicode string",
];

/// A JSON value as Python's json module builds it.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// `null` (`None`).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer of any size, as its decimal digits (with '-' when negative), exactly as Python keeps it
    /// (`-0` is `0`).
    Int(String),
    /// A float, NaN and ±inf included (NaN, Infinity, -Infinity literals; 1e400 → inf).
    Float(f64),
    /// A string (lone surrogates become U+FFFD).
    Str(String),
    /// An array (`list`).
    Array(Vec<PyValue>),
    /// Keys in first-insertion order; a repeated key keeps its first position and takes the last value
    /// (dict semantics).
    Object(Vec<(String, PyValue)>),
}

/// Why [`loads`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes are not text in the encoding json.loads detects (FastAPI then answers 400 "There was an
    /// error parsing the body").
    NotText,
    /// json.JSONDecodeError: CPython's `msg` (no line/column suffix) and `pos`, a code-point index into the
    /// decoded text (FastAPI answers 422 `json_invalid`).
    Invalid {
        /// CPython's message, e.g. "Expecting value".
        msg: &'static str,
        /// The code-point index of the error.
        pos: usize,
    },
    /// json.loads raised another exception: `ValueError` for an integer of more than 4300 digits,
    /// `RecursionError` for nesting deeper than [`MAX_DEPTH`]. FastAPI answers it like [`Self::NotText`]:
    /// 400 "There was an error parsing the body".
    Other {
        /// The exception's message (for logs only).
        msg: &'static str,
    },
}

/// Decodes a request body the way CPython 3.11's `json.loads(bytes)` does.
pub fn loads(bytes: &[u8]) -> Result<PyValue, DecodeError> {
    let text = decode_text(bytes).ok_or(DecodeError::NotText)?;
    let parser = Parser { s: &text };
    let (value, end) = parser.scan(parser.ws(0))?;
    let end = parser.ws(end);
    if end != text.len() {
        return Err(invalid("Extra data", end));
    }
    Ok(value)
}

impl PyValue {
    /// The value as JSON text the way FastAPI's response encoder would write it back in an error's `input`.
    /// Not exact where `serde_json::Value` cannot be: NaN and ±inf become null (Starlette refuses them and the
    /// original answers 500, see [`Self::has_non_finite`]); an integer outside i64/u64 becomes the nearest
    /// f64, and null beyond f64's range.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(digits) => match (digits.parse::<i64>(), digits.parse::<u64>()) {
                (Ok(i), _) => Value::from(i),
                (_, Ok(u)) => Value::from(u),
                _ => digits.parse::<f64>().ok().and_then(Number::from_f64).map_or(Value::Null, Value::Number),
            },
            Self::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Self::Str(s) => Value::String(s.clone()),
            Self::Array(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            Self::Object(members) => {
                Value::Object(members.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<Map<_, _>>())
            }
        }
    }

    /// Whether a NaN or ±inf float is anywhere inside. Starlette's `JSONResponse` (`allow_nan=False`) cannot
    /// write such a value, so an answer echoing it is a 500 Internal Server Error in the original.
    pub fn has_non_finite(&self) -> bool {
        match self {
            Self::Float(f) => !f.is_finite(),
            Self::Array(items) => items.iter().any(Self::has_non_finite),
            Self::Object(members) => members.iter().any(|(_, v)| v.has_non_finite()),
            _ => false,
        }
    }

    /// The members when this is an object.
    pub fn as_object(&self) -> Option<&[(String, PyValue)]> {
        match self {
            Self::Object(members) => Some(members),
            _ => None,
        }
    }

    /// The value of `key` when this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        self.as_object()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Code points as a Rust string: a lone surrogate becomes U+FFFD.
fn text(code_points: &[u32]) -> String {
    code_points.iter().map(|&c| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER)).collect()
}

fn invalid(msg: &'static str, pos: usize) -> DecodeError {
    DecodeError::Invalid { msg, pos }
}

/// `json.detect_encoding` followed by `bytes.decode(encoding, 'surrogatepass')`, as code points.
fn decode_text(b: &[u8]) -> Option<Vec<u32>> {
    const BE: bool = true;
    const LE: bool = false;
    match b {
        [0xFF, 0xFE, 0, 0, rest @ ..] => utf32(rest, LE),
        [0, 0, 0xFE, 0xFF, rest @ ..] => utf32(rest, BE),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, LE),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, BE),
        [0xEF, 0xBB, 0xBF, rest @ ..] => utf8(rest),
        [0, b1, _, _, ..] if *b1 != 0 => utf16(b, BE),
        [0, _, _, _, ..] => utf32(b, BE),
        [_, 0, b2, b3, ..] if *b2 != 0 || *b3 != 0 => utf16(b, LE),
        [_, 0, _, _, ..] => utf32(b, LE),
        [0, _] => utf16(b, BE),
        [_, 0] => utf16(b, LE),
        _ => utf8(b),
    }
}

/// UTF-8 as Python decodes it with `surrogatepass`: strict, except that encoded surrogates pass.
fn utf8(b: &[u8]) -> Option<Vec<u32>> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&lead) = b.get(i) {
        let (len, min, mask) = match lead {
            0..=0x7F => (1, 0, 0x7F),
            0xC2..=0xDF => (2, 0x80, 0x1F),
            0xE0..=0xEF => (3, 0x800, 0x0F),
            0xF0..=0xF4 => (4, 0x1_0000, 0x07),
            _ => return None,
        };
        let mut cp = u32::from(lead & mask);
        for k in 1..len {
            let next = *b.get(i + k)?;
            if next & 0xC0 != 0x80 {
                return None;
            }
            cp = (cp << 6) | u32::from(next & 0x3F);
        }
        if cp < min || cp > 0x10_FFFF {
            return None;
        }
        out.push(cp);
        i += len;
    }
    Some(out)
}

/// UTF-16 with `surrogatepass`: pairs combine, a lone surrogate passes; an odd byte count fails.
fn utf16(b: &[u8], big: bool) -> Option<Vec<u32>> {
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let units = b
        .chunks_exact(2)
        .map(|c| if big { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) });
    Some(
        char::decode_utf16(units)
            .map(|r| r.map_or_else(|e| u32::from(e.unpaired_surrogate()), u32::from))
            .collect(),
    )
}

/// UTF-32 with `surrogatepass`: surrogates pass, code points above U+10FFFF fail.
fn utf32(b: &[u8], big: bool) -> Option<Vec<u32>> {
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let unit = |c: &[u8]| {
        let c = [c[0], c[1], c[2], c[3]];
        if big { u32::from_be_bytes(c) } else { u32::from_le_bytes(c) }
    };
    b.chunks_exact(4).map(|c| Some(unit(c)).filter(|&cp| cp <= 0x10_FFFF)).collect()
}

/// An array or object whose members are being read.
enum Frame {
    Array(Vec<PyValue>),
    /// The members, where each key is (its code points, to compare keys as Python does), the pending key.
    Object {
        members: Vec<(String, PyValue)>,
        index: HashMap<Vec<u32>, usize>,
        key: Vec<u32>,
    },
}

impl Frame {
    /// Adds the value just read (to the pending key of an object: `dict[key] = value`).
    fn push(&mut self, value: PyValue) {
        match self {
            Self::Array(items) => items.push(value),
            Self::Object { members, index, key } => {
                let key = std::mem::take(key);
                if let Some(slot) = index.get(&key).and_then(|&at| members.get_mut(at)) {
                    slot.1 = value;
                } else {
                    members.push((text(&key), value));
                    index.insert(key, members.len() - 1);
                }
            }
        }
    }

    fn close(&self) -> char {
        if matches!(self, Self::Array(_)) { ']' } else { '}' }
    }

    fn into_value(self) -> PyValue {
        match self {
            Self::Array(items) => PyValue::Array(items),
            Self::Object { members, .. } => PyValue::Object(members),
        }
    }
}

/// CPython's `scan_once` over the decoded code points.
struct Parser<'a> {
    s: &'a [u32],
}

impl Parser<'_> {
    fn is(&self, i: usize, c: char) -> bool {
        self.s.get(i) == Some(&u32::from(c))
    }

    fn is_digit(&self, i: usize) -> bool {
        self.s.get(i).is_some_and(|c| (0x30..=0x39).contains(c))
    }

    /// Skips `[ \t\n\r]*` from `i`.
    fn ws(&self, mut i: usize) -> usize {
        while self.s.get(i).is_some_and(|&c| matches!(c, 0x20 | 0x09 | 0x0A | 0x0D)) {
            i += 1;
        }
        i
    }

    fn digits(&self, mut i: usize) -> usize {
        while self.is_digit(i) {
            i += 1;
        }
        i
    }

    /// The value at `idx` and the index after it; iterative, with an explicit stack of open containers.
    fn scan(&self, mut idx: usize) -> Result<(PyValue, usize), DecodeError> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            let (mut value, mut end) = if self.is(idx, '[') || self.is(idx, '{') {
                let array = self.is(idx, '[');
                if stack.len() >= MAX_DEPTH {
                    return Err(DecodeError::Other { msg: RECURSION[usize::from(array)] });
                }
                let mut frame = if array {
                    Frame::Array(Vec::new())
                } else {
                    Frame::Object { members: Vec::new(), index: HashMap::new(), key: Vec::new() }
                };
                let i = self.ws(idx + 1);
                if self.is(i, frame.close()) {
                    (frame.into_value(), i + 1)
                } else {
                    idx = self.member(&mut frame, i)?;
                    stack.push(frame);
                    continue;
                }
            } else {
                self.scalar(idx)?
            };
            // Hand the finished value to the open containers, closing those that end here.
            loop {
                let Some(frame) = stack.last_mut() else { return Ok((value, end)) };
                frame.push(value);
                let i = self.ws(end);
                if self.is(i, frame.close()) {
                    let Some(done) = stack.pop() else { return Err(invalid("Expecting value", i)) };
                    (value, end) = (done.into_value(), i + 1);
                } else if self.is(i, ',') {
                    idx = self.member(frame, self.ws(i + 1))?;
                    break;
                } else {
                    return Err(invalid("Expecting ',' delimiter", i));
                }
            }
        }
    }

    /// Where a member's value starts: at `i` in an array; in an object after the key at `i` (kept in the
    /// frame), its ':' and the whitespace after it.
    fn member(&self, frame: &mut Frame, i: usize) -> Result<usize, DecodeError> {
        let Frame::Object { key, .. } = frame else { return Ok(i) };
        if !self.is(i, '"') {
            return Err(invalid("Expecting property name enclosed in double quotes", i));
        }
        let end;
        (*key, end) = self.string(i)?;
        let i = self.ws(end);
        if !self.is(i, ':') {
            return Err(invalid("Expecting ':' delimiter", i));
        }
        Ok(self.ws(i + 1))
    }

    /// A string, a named constant or a number at `idx` (CPython tests the constants first).
    fn scalar(&self, idx: usize) -> Result<(PyValue, usize), DecodeError> {
        if self.is(idx, '"') {
            return self.string(idx).map(|(s, end)| (PyValue::Str(text(&s)), end));
        }
        let constants = [
            ("null", PyValue::Null),
            ("true", PyValue::Bool(true)),
            ("false", PyValue::Bool(false)),
            ("NaN", PyValue::Float(f64::NAN)),
            ("Infinity", PyValue::Float(f64::INFINITY)),
            ("-Infinity", PyValue::Float(f64::NEG_INFINITY)),
        ];
        for (name, value) in constants {
            if name.chars().enumerate().all(|(k, c)| self.is(idx + k, c)) {
                return Ok((value, idx + name.len()));
            }
        }
        self.number(idx)
    }

    /// `(-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?`, else "Expecting value" at `start`.
    fn number(&self, start: usize) -> Result<(PyValue, usize), DecodeError> {
        let mut i = start + usize::from(self.is(start, '-'));
        if self.is(i, '0') {
            i += 1;
        } else if self.is_digit(i) {
            i = self.digits(i);
        } else {
            return Err(invalid("Expecting value", start));
        }
        let int_end = i;
        if self.is(i, '.') && self.is_digit(i + 1) {
            i = self.digits(i + 1);
        }
        if self.is(i, 'e') || self.is(i, 'E') {
            let sign = usize::from(self.is(i + 1, '+') || self.is(i + 1, '-'));
            if self.is_digit(i + 1 + sign) {
                i = self.digits(i + 1 + sign);
            }
        }
        let text: String =
            self.s.get(start..i).unwrap_or_default().iter().filter_map(|&c| char::from_u32(c)).collect();
        if i == int_end {
            let digits = text.trim_start_matches('-');
            if digits.len() > MAX_INT_DIGITS {
                return Err(DecodeError::Other {
                    msg: "Exceeds the limit (4300 digits) for integer string conversion",
                });
            }
            let int = if digits == "0" { digits.to_owned() } else { text };
            return Ok((PyValue::Int(int), i));
        }
        let float = text.parse::<f64>().map_err(|_| invalid("Expecting value", start))?;
        Ok((PyValue::Float(float), i))
    }

    /// The code points of the string whose opening quote is at `quote` (lone surrogates kept), and the
    /// index after its closing quote.
    fn string(&self, quote: usize) -> Result<(Vec<u32>, usize), DecodeError> {
        let unterminated = invalid("Unterminated string starting at", quote);
        let mut out = Vec::new();
        let mut i = quote + 1;
        loop {
            let c = *self.s.get(i).ok_or_else(|| unterminated.clone())?;
            match c {
                0x22 => return Ok((out, i + 1)),
                0x5C => {
                    let escaped = *self.s.get(i + 1).ok_or_else(|| unterminated.clone())?;
                    let simple = match char::from_u32(escaped) {
                        Some(c @ ('"' | '\\' | '/')) => c,
                        Some('b') => '\u{8}',
                        Some('f') => '\u{c}',
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('u') => {
                            let (c, end) = self.unicode_escape(i)?;
                            out.push(c);
                            i = end;
                            continue;
                        }
                        _ => return Err(invalid("Invalid \\escape", i)),
                    };
                    out.push(u32::from(simple));
                    i += 2;
                }
                0..=0x1F => return Err(invalid("Invalid control character at", i)),
                _ => {
                    out.push(c);
                    i += 1;
                }
            }
        }
    }

    /// `\uXXXX` (and a following low-surrogate escape) at backslash `b`. CPython wants one more character
    /// after the escape, and reports a bad one at its 'u'.
    fn unicode_escape(&self, b: usize) -> Result<(u32, usize), DecodeError> {
        let bad = |u: usize| invalid("Invalid \\uXXXX escape", u);
        let len = self.s.len();
        let mut end = b + 6;
        if end >= len {
            return Err(bad(b + 1));
        }
        let mut cp = self.hex4(b + 2).ok_or_else(|| bad(b + 1))?;
        if (0xD800..0xDC00).contains(&cp) && end + 6 < len && self.is(end, '\\') && self.is(end + 1, 'u') {
            let low = self.hex4(end + 2).ok_or_else(|| bad(end + 1))?;
            if (0xDC00..0xE000).contains(&low) {
                cp = 0x1_0000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                end += 6;
            }
        }
        Ok((cp, end))
    }

    fn hex4(&self, i: usize) -> Option<u32> {
        self.s.get(i..i + 4)?.iter().try_fold(0, |acc, &c| Some(acc * 16 + char::from_u32(c)?.to_digit(16)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What CPython 3.11.7's `json.loads` gives: a value (in `canon`'s notation) or a `JSONDecodeError`.
    enum Want {
        V(&'static str),
        E(&'static str, usize),
        NotText,
    }
    use Want::{E, NotText, V};

    /// Python's `json.dumps(ensure_ascii=False)` of the value, with `nan`, `inf` and `-inf` for the floats.
    fn canon(v: &PyValue) -> String {
        let join = |items: Vec<String>| items.join(",");
        match v {
            PyValue::Float(f) if f.is_nan() => "nan".into(),
            PyValue::Float(f) => format!("{f:?}"),
            PyValue::Int(digits) => digits.clone(),
            PyValue::Array(items) => format!("[{}]", join(items.iter().map(canon).collect())),
            PyValue::Object(m) => {
                format!(
                    "{{{}}}",
                    join(
                        m.iter().map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), canon(v))).collect()
                    )
                )
            }
            other => other.to_json().to_string(),
        }
    }

    /// Inputs and what CPython 3.11.7 answered (generated by running `json.loads` on each input).
    const CASES: &[(&[u8], Want)] = &[
        (b"{\"user_id\": 1, \"pokemon\": \"pikachu\"}", V(r#"{"user_id":1,"pokemon":"pikachu"}"#)),
        (b" \t\r\n[1, -2, 3.5, true, false, null] \n", V(r#"[1,-2,3.5,true,false,null]"#)),
        (b"\"\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\\b\\f\\r\\t\"", V(r#""é😀\n\"\\/\b\f\r\t""#)),
        (b"{\"a\":1,\"b\":2,\"a\":3}", V(r#"{"a":3,"b":2}"#)),
        (b"[NaN, Infinity, -Infinity]", V(r#"[nan,inf,-inf]"#)),
        (b"1e400", V(r#"inf"#)),
        (b"-0", V(r#"0"#)),
        (b"-0.0", V(r#"-0.0"#)),
        (b"1E+2", V(r#"100.0"#)),
        (b"123456789012345678901234567890", V(r#"123456789012345678901234567890"#)),
        (b"\"\\ud800\"", V(r#""�""#)),
        (b"\"\\ud83d\\u0041\"", V(r#""�A""#)),
        (b"{\"\\ud800\":1,\"\\udc00\":2}", V(r#"{"�":1,"�":2}"#)),
        (b"\"\xed\xa0\x80\"", V(r#""�""#)),
        (b"", E("Expecting value", 0)),
        (b"   ", E("Expecting value", 3)),
        (b"hello", E("Expecting value", 0)),
        (b"{", E("Expecting property name enclosed in double quotes", 1)),
        (b"{\"user_id\": 1,", E("Expecting property name enclosed in double quotes", 14)),
        (b"[1,]", E("Expecting value", 3)),
        (b"{\"a\":1,}", E("Expecting property name enclosed in double quotes", 7)),
        (b"01", E("Extra data", 1)),
        (b"1.", E("Extra data", 1)),
        (b"-", E("Expecting value", 0)),
        (b"-NaN", E("Expecting value", 0)),
        (b"NaNx", E("Extra data", 3)),
        (b"{\"a\":}", E("Expecting value", 5)),
        (b"[1 2]", E("Expecting ',' delimiter", 3)),
        (b"{\"a\" 1}", E("Expecting ':' delimiter", 5)),
        (b"\x0c1", E("Expecting value", 0)),
        (b"\"a\tb\"", E("Invalid control character at", 2)),
        (b"\"abc", E("Unterminated string starting at", 0)),
        (b"{\"pokemon\": \"\xc3\xa9\", x", E("Expecting property name enclosed in double quotes", 17)),
        (b"[\"\xf0\x9f\x98\x80\", x]", E("Expecting value", 6)),
        (b"\"\\x\"", E("Invalid \\escape", 1)),
        (b"\"\\u12\"", E("Invalid \\uXXXX escape", 2)),
        (b"\"\\ud83d\\ude00", E("Invalid \\uXXXX escape", 8)),
        (b"\"\\ud83d\\uzzzz\"", E("Invalid \\uXXXX escape", 8)),
        (b"[1,\n{\"a\":[}]", E("Expecting value", 10)),
        (b"\xef\xbb\xbf{\"a\":1}", V(r#"{"a":1}"#)),
        (b"\xef\xbb\xbf\xef\xbb\xbf1", E("Expecting value", 0)),
        (b"{\x00\"\x00a\x00\"\x00:\x00 \x00x\x00}\x00", E("Expecting value", 6)),
        (b"\xff\xfe[\x00\"\x00\xe9\x00\"\x00,\x00 \x00x\x00]\x00", E("Expecting value", 6)),
        (b"\x00[\x00\"\xd8=\xde\x00\x00\"\x00,\x00 \x00x\x00]", E("Expecting value", 6)),
        (b"\xfe\xff\x00[\x001\x00]", V(r#"[1]"#)),
        (b"\"\x00\x00\xd8\"\x00", V(r#""�""#)),
        (b"[\x00\x00\x001\x00\x00\x00,\x00\x00\x002\x00\x00\x00]\x00\x00\x00", V(r#"[1,2]"#)),
        (b"\xff\xfe\x00\x00\"\x00\x00\x00\x00\xf6\x01\x00\"\x00\x00\x00", V(r#""😀""#)),
        (b"\x00\x00\xfe\xff\x00\x00\x00[\x00\x00\x00x\x00\x00\x00]", E("Expecting value", 1)),
        (b"1\x00", V(r#"1"#)),
        (b"\xff", NotText),
        (b"\xc0\x80", NotText),
        (b"1\x00 \x00x", NotText),
        (b"1\x00\x00\x00\x00\x00\x11\x00", NotText),
    ];

    #[test]
    fn agrees_with_cpython() {
        for (input, want) in CASES {
            let got = loads(input);
            let shown = String::from_utf8_lossy(input);
            match want {
                V(text) => assert_eq!(got.as_ref().map(canon).as_deref(), Ok(*text), "{shown:?}"),
                E(msg, pos) => assert_eq!(got, Err(DecodeError::Invalid { msg, pos: *pos }), "{shown:?}"),
                NotText => assert_eq!(got, Err(DecodeError::NotText), "{shown:?}"),
            }
        }
    }

    #[test]
    fn int_digit_limit_is_a_value_error() {
        // CPython 3.11.7: 4300 digits (sign not counted) parse; 4301 raise ValueError, even with bad data after.
        let ones = "1".repeat(4300);
        assert_eq!(loads(ones.as_bytes()), Ok(PyValue::Int(ones.clone())));
        assert_eq!(loads(format!("-{ones}").as_bytes()), Ok(PyValue::Int(format!("-{ones}"))));
        let other =
            Err(DecodeError::Other { msg: "Exceeds the limit (4300 digits) for integer string conversion" });
        assert_eq!(loads(format!("[1{ones},x]").as_bytes()), other);
        assert_eq!(loads(format!("1{ones}.0").as_bytes()), Ok(PyValue::Float(f64::INFINITY)));
    }

    #[test]
    fn nesting_deeper_than_max_depth_is_a_recursion_error() {
        // FastAPI 0.111.0 under uvicorn 0.30.1: 967 levels parse (then 422), 968 are a RecursionError (400).
        let nest = |n: usize, open: &str, close: &str| format!("{}1{}", open.repeat(n), close.repeat(n));
        assert!(loads(nest(MAX_DEPTH, "[", "]").as_bytes()).is_ok());
        assert!(loads(nest(MAX_DEPTH, "{\"a\":", "}").as_bytes()).is_ok());
        let too_deep = |msg| Err(DecodeError::Other { msg });
        assert_eq!(loads(nest(MAX_DEPTH + 1, "[", "]").as_bytes()), too_deep(RECURSION[1]));
        assert_eq!(loads(nest(MAX_DEPTH + 1, "{\"a\":", "}").as_bytes()), too_deep(RECURSION[0]));
        assert_eq!(loads("[".repeat(1_000_000).as_bytes()), too_deep(RECURSION[1]));
        let open = "[".repeat(MAX_DEPTH);
        assert_eq!(
            loads(open.as_bytes()),
            Err(DecodeError::Invalid { msg: "Expecting value", pos: MAX_DEPTH })
        );
    }

    #[test]
    fn to_json_get_and_non_finite() {
        let body = br#"{"a":[1,2.5,"x",null,true],"n":NaN,"big":123456789012345678901234567890,"u":18446744073709551615}"#;
        let v = loads(body).unwrap_or(PyValue::Null);
        let want =
            r#"{"a":[1,2.5,"x",null,true],"n":null,"big":1.2345678901234568e+29,"u":18446744073709551615}"#;
        assert_eq!(v.to_json().to_string(), want);
        assert_eq!(v.get("a").map(|a| a.to_json().to_string()).as_deref(), Some(r#"[1,2.5,"x",null,true]"#));
        assert_eq!((v.get("zz"), v.as_object().map(<[_]>::len)), (None, Some(4)));
        assert!(v.has_non_finite() && !v.get("a").is_some_and(PyValue::has_non_finite));
    }
}
