//! Loading and validation of GNFUV-format sensor CSV files (`device_id,humidity,temperature,time`).
//!
//! The sensor simulator replays these rows, so a file is checked completely before it is accepted: every
//! problem is reported with the file, the line and the field, and a file with any problem is rejected whole.
//! Values are kept exactly as written (the GNFUV form of a missing reading is ` None`, with a leading space),
//! because the simulator publishes them as strings; typed accessors parse them on demand.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// The columns a GNFUV file must have, in the order they appear in the original data.
pub const COLUMNS: [&str; 4] = ["device_id", "humidity", "temperature", "time"];

/// How many row problems are kept (and shown) in one [`DatasetError::Rows`]; the rest are only counted.
pub const MAX_REPORTED_PROBLEMS: usize = 20;

/// One validated row of a sensor file.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorRow {
    /// 1-based line of the row in the file (the header is line 1).
    pub line: u64,
    /// The device that produced the reading, never empty.
    pub device_id: String,
    /// Humidity exactly as in the file, e.g. `"21"` or `" None"`.
    pub humidity: String,
    /// Temperature exactly as in the file, e.g. `"40"` or `" None"`.
    pub temperature: String,
    /// The source timestamp of the reading.
    pub time: NaiveDateTime,
}

impl SensorRow {
    /// The humidity as a number, or `None` for a missing (`None`) reading.
    pub fn humidity_value(&self) -> Option<f64> {
        parse_measurement(&self.humidity).ok().flatten()
    }

    /// The temperature as a number, or `None` for a missing (`None`) reading.
    pub fn temperature_value(&self) -> Option<f64> {
        parse_measurement(&self.temperature).ok().flatten()
    }
}

/// A whole validated sensor file, rows in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Where the rows came from (the path as given), for messages.
    pub source: String,
    /// The data rows in file order.
    pub rows: Vec<SensorRow>,
}

/// One problem found in a data row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// 1-based line of the row in the file.
    pub line: u64,
    /// The column at fault, or `None` when the row as a whole is wrong (e.g. its field count).
    pub field: Option<&'static str>,
    /// What is wrong, e.g. `expected a number or None, found "abc"`.
    pub detail: String,
}

/// Why a sensor file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be opened or read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The path as given.
        file: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The CSV reader failed for a reason other than I/O.
    #[error("{file}: {source}")]
    Csv {
        /// The path as given.
        file: String,
        /// The underlying CSV error (it carries its own position).
        source: csv::Error,
    },
    /// The file has no header line at all.
    #[error("{file}: empty file, expected the header `device_id,humidity,temperature,time`")]
    Empty {
        /// The path as given.
        file: String,
    },
    /// The header does not name exactly the four GNFUV columns.
    #[error("{file}:1: header: {problem}")]
    Header {
        /// The path as given.
        file: String,
        /// Which columns are missing, unexpected or repeated.
        problem: String,
    },
    /// The file has a header but no data rows.
    #[error("{file}: no data rows after the header")]
    NoRows {
        /// The path as given.
        file: String,
    },
    /// Some rows are invalid; `problems` holds the first [`MAX_REPORTED_PROBLEMS`] of `total`.
    #[error("{}", render_problems(file, problems, *total))]
    Rows {
        /// The path as given.
        file: String,
        /// The first problems found, in file order.
        problems: Vec<RowProblem>,
        /// How many problems were found in all.
        total: usize,
    },
}

/// One line per problem, `file:line: field 'name': detail`, then a count of those left out.
fn render_problems(file: &str, problems: &[RowProblem], total: usize) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = write!(out, "{file}:{}: ", p.line);
        if let Some(field) = p.field {
            let _ = write!(out, "field '{field}': ");
        }
        out.push_str(&p.detail);
    }
    if total > problems.len() {
        let _ = write!(out, "\n{file}: ... and {} more problem(s) not shown", total - problems.len());
    }
    out
}

impl Dataset {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Dataset, DatasetError> {
        let file = path.display().to_string();
        let reader =
            std::fs::File::open(path).map_err(|source| DatasetError::Io { file: file.clone(), source })?;
        Self::from_reader(&file, reader)
    }

    /// Reads and validates CSV text from `r`; `source` names it in messages.
    pub fn from_reader(source: &str, r: impl std::io::Read) -> Result<Dataset, DatasetError> {
        let file = source.to_owned();
        let csv_error = |e: csv::Error| {
            if e.is_io_error() {
                DatasetError::Io { file: file.clone(), source: e.into() }
            } else {
                DatasetError::Csv { file: file.clone(), source: e }
            }
        };
        // Lines are counted here: the csv crate's own count falls one behind after each CRLF.
        let breaks = std::rc::Rc::new(std::cell::RefCell::new(LineBreaks::default()));
        let r = CountLines { inner: r, breaks: breaks.clone() };
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(r);
        let header = reader.byte_headers().map_err(csv_error)?.clone();
        if header.is_empty() {
            return Err(DatasetError::Empty { file });
        }
        let columns = column_indexes(&header)
            .map_err(|problem| DatasetError::Header { file: file.clone(), problem })?;

        let mut rows = Vec::new();
        let mut problems = Vec::new();
        let mut total = 0;
        let mut record = csv::ByteRecord::new();
        while reader.read_byte_record(&mut record).map_err(csv_error)? {
            let line = record.position().map_or(0, |p| breaks.borrow().line_of(p.byte()));
            match validate_row(line, &record, header.len(), &columns) {
                Ok(row) if total == 0 => rows.push(row),
                Ok(_) => {}
                Err(found) => {
                    total += found.len();
                    let room = MAX_REPORTED_PROBLEMS.saturating_sub(problems.len());
                    problems.extend(found.into_iter().take(room));
                }
            }
        }
        if total > 0 {
            tracing::debug!(source, total, "dataset rejected");
            return Err(DatasetError::Rows { file, problems, total });
        }
        if rows.is_empty() {
            return Err(DatasetError::NoRows { file });
        }
        let dataset = Dataset { source: file, rows };
        tracing::debug!(
            source,
            rows = dataset.rows.len(),
            devices = dataset.devices().len(),
            "dataset loaded"
        );
        Ok(dataset)
    }

    /// The distinct device ids, sorted.
    pub fn devices(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self.rows.iter().map(|r| r.device_id.as_str()).collect();
        set.into_iter().collect()
    }

    /// The rows of each device, in file order within a device.
    pub fn by_device(&self) -> BTreeMap<&str, Vec<&SensorRow>> {
        let mut map: BTreeMap<&str, Vec<&SensorRow>> = BTreeMap::new();
        for row in &self.rows {
            map.entry(row.device_id.as_str()).or_default().push(row);
        }
        map
    }
}

/// Maps each of [`COLUMNS`] to its index in the header, or describes what is wrong with the header.
fn column_indexes(header: &csv::ByteRecord) -> Result<[usize; 4], String> {
    let mut found: [Option<usize>; 4] = [None; 4];
    let mut complaints = Vec::new();
    for (i, raw) in header.iter().enumerate() {
        let name = String::from_utf8_lossy(raw);
        let name = name.trim();
        match COLUMNS.iter().position(|c| *c == name) {
            Some(c) if found[c].is_some() => complaints.push(format!("column '{name}' appears twice")),
            Some(c) => found[c] = Some(i),
            None => complaints.push(format!("unexpected column '{name}'")),
        }
    }
    for (c, idx) in COLUMNS.iter().zip(found) {
        if idx.is_none() {
            complaints.push(format!("missing column '{c}'"));
        }
    }
    match found {
        [Some(d), Some(h), Some(t), Some(ts)] if complaints.is_empty() => Ok([d, h, t, ts]),
        _ => Err(format!("{} (expected exactly {} in any order)", complaints.join("; "), COLUMNS.join(", "))),
    }
}

/// Where the lines of a CSV stream break, as the csv crate breaks records: at `\n`, `\r\n` and a lone
/// `\r`. Eight bytes per line, for as long as the file is read.
#[derive(Debug, Default)]
struct LineBreaks {
    /// Byte offsets of each line break (the `\r` of a `\r\n`).
    at: Vec<u64>,
    /// The byte before the current read, to tell `\r\n` from two breaks.
    last: u8,
    /// Bytes read so far.
    offset: u64,
}

impl LineBreaks {
    /// The 1-based line holding byte `offset`.
    fn line_of(&self, offset: u64) -> u64 {
        self.at.partition_point(|&b| b < offset) as u64 + 1
    }
}

/// A reader that notes every line break it passes on.
struct CountLines<R> {
    inner: R,
    breaks: std::rc::Rc<std::cell::RefCell<LineBreaks>>,
}

impl<R: std::io::Read> std::io::Read for CountLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut b = self.breaks.borrow_mut();
        let base = b.offset;
        for (i, &byte) in buf[..n].iter().enumerate() {
            if byte == b'\r' || (byte == b'\n' && b.last != b'\r') {
                b.at.push(base + i as u64);
            }
            b.last = byte;
        }
        b.offset += n as u64;
        Ok(n)
    }
}

/// Checks one data row; returns every problem found in it.
fn validate_row(
    line: u64,
    record: &csv::ByteRecord,
    width: usize,
    columns: &[usize; 4],
) -> Result<SensorRow, Vec<RowProblem>> {
    if record.len() != width {
        let detail = format!("expected {width} fields, found {}", record.len());
        return Err(vec![RowProblem { line, field: None, detail }]);
    }
    let mut problems = Vec::new();
    let mut problem =
        |field: &'static str, detail: String| problems.push(RowProblem { line, field: Some(field), detail });
    let mut text = |c: usize| match std::str::from_utf8(&record[columns[c]]) {
        Ok(s) => Some(s),
        Err(_) => {
            problem(COLUMNS[c], "not valid UTF-8".to_owned());
            None
        }
    };
    let (device_id, humidity, temperature, time) = (text(0), text(1), text(2), text(3));
    if device_id.is_some_and(|d| d.trim().is_empty()) {
        problem(COLUMNS[0], "must not be empty".to_owned());
    }
    for (c, value) in [(1, humidity), (2, temperature)] {
        if let Some(v) = value.filter(|v| parse_measurement(v).is_err()) {
            problem(COLUMNS[c], format!("expected a number or None, found {:?}", crate::config::cut(v)));
        }
    }
    let parsed_time = time.and_then(|t| match parse_time(t) {
        Ok(ts) => Some(ts),
        Err(detail) => {
            problem(COLUMNS[3], format!("{detail}, found {:?}", crate::config::cut(t)));
            None
        }
    });
    match (device_id, humidity, temperature, parsed_time) {
        (Some(d), Some(h), Some(t), Some(time)) if problems.is_empty() => Ok(SensorRow {
            line,
            device_id: d.to_owned(),
            humidity: h.to_owned(),
            temperature: t.to_owned(),
            time,
        }),
        _ => Err(problems),
    }
}

/// A finite number (surrounding spaces allowed), `Ok(None)` for `None`, `Err` for anything else.
fn parse_measurement(raw: &str) -> Result<Option<f64>, ()> {
    let v = raw.trim();
    if v == "None" {
        return Ok(None);
    }
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(Some(x)),
        _ => Err(()),
    }
}

/// Parses `YYYY-MM-DD HH:MM:SS[.fraction]` or `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, fraction 1–9 digits.
fn parse_time(s: &str) -> Result<NaiveDateTime, &'static str> {
    const SHAPE: &str = "expected YYYY-MM-DD HH:MM:SS[.fraction] or YYYY-MM-DDTHH:MM:SS[.fff]Z";
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    // The digit groups being present means the text is at least 19 bytes long.
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) =
        (digits(0..4), digits(5..7), digits(8..10), digits(11..13), digits(14..16), digits(17..19))
    else {
        return Err(SHAPE);
    };
    if !(b[4] == b'-' && b[7] == b'-' && matches!(b[10], b' ' | b'T') && b[13] == b':' && b[16] == b':') {
        return Err(SHAPE);
    }
    let iso = b[10] == b'T';
    let mut rest = &b[19..];
    if iso {
        rest = rest.strip_suffix(b"Z").ok_or(SHAPE)?;
    }
    let nanos = match rest {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) && frac.iter().all(u8::is_ascii_digit) => {
            let n = frac.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            n * 10u32.pow(9 - frac.len() as u32)
        }
        _ => return Err(SHAPE),
    };
    let date = NaiveDate::from_ymd_opt(y as i32, mo, d).ok_or("not a valid calendar date")?;
    let time = NaiveTime::from_hms_nano_opt(h, mi, sec, nanos)
        .filter(|_| sec < 60)
        .ok_or("not a valid time of day")?;
    Ok(NaiveDateTime::new(date, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Dataset, DatasetError> {
        Dataset::from_reader("datasets/x.csv", text.as_bytes())
    }

    fn row_problems(text: &str) -> (Vec<RowProblem>, usize, String) {
        match load_str(text) {
            Err(e @ DatasetError::Rows { .. }) => {
                let shown = e.to_string();
                let DatasetError::Rows { problems, total, .. } = e else { unreachable!() };
                (problems, total, shown)
            }
            other => panic!("expected row problems, got {other:?}"),
        }
    }

    const HEADER: &str = "device_id,humidity,temperature,time\n";
    const GOOD: &str = "dev-a,21,40,2018-03-26 17:19:17.406089000\n";

    #[test]
    fn real_gnfuv_file_loads() {
        let Some(path) = crate::testing::shared_file("real_gnfuv_file_loads", "datasets/gnfuv/pi2.csv")
        else {
            return;
        };
        let ds = Dataset::load(&path).unwrap();
        assert_eq!(ds.source, path.display().to_string());
        assert_eq!(ds.rows.len(), 1546);
        assert_eq!(ds.devices().len(), 9);
        let nones: Vec<_> = ds.rows.iter().filter(|r| r.humidity == " None").collect();
        assert_eq!(nones.len(), 14);
        assert!(nones.iter().all(|r| r.temperature == " None" && r.humidity_value().is_none()));
        assert!(nones.iter().all(|r| r.temperature_value().is_none()));
        let by_device = ds.by_device();
        let first = by_device["gnfuv-temp-exp1-55d487b85b-5g2xh"][0];
        assert_eq!(first.line, 2);
        assert_eq!((first.humidity.as_str(), first.temperature.as_str()), ("21", "40"));
        assert_eq!((first.humidity_value(), first.temperature_value()), (Some(21.0), Some(40.0)));
        assert_eq!(first.time.to_string(), "2018-03-26 17:19:17.406089");
        assert_eq!(by_device.values().map(Vec::len).sum::<usize>(), 1546);
        assert_eq!(by_device["gnfuv-temp-exp1-55d487b85b-9jxjf"].len(), 19);
        assert!(by_device.values().all(|rows| rows.windows(2).all(|w| w[0].line < w[1].line)));
    }

    #[test]
    fn load_from_disk_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ok.csv");
        std::fs::write(&path, format!("{HEADER}{GOOD}")).unwrap();
        assert_eq!(Dataset::load(&path).unwrap().rows.len(), 1);

        let missing = dir.path().join("absent.csv");
        let err = Dataset::load(&missing).unwrap_err();
        assert!(matches!(err, DatasetError::Io { .. }));
        assert!(err.to_string().starts_with(&format!("{}: cannot read: ", missing.display())), "{err}");
    }

    #[test]
    fn accepted_forms_are_kept_raw() {
        let text = "time,temperature,device_id,humidity\n\
                    2018-03-26T17:19:17.406Z, 21.5 ,dev-b,None\n\
                    2018-03-26 17:19:18, None,dev-a, None\n\
                    2018-03-26 17:19:19.5,-3,dev-a,7\n";
        let ds = load_str(text).unwrap();
        let r = &ds.rows;
        assert_eq!((r[0].line, r[0].device_id.as_str(), r[0].temperature.as_str()), (2, "dev-b", " 21.5 "));
        assert_eq!((r[0].temperature_value(), r[0].humidity_value()), (Some(21.5), None));
        assert_eq!(r[0].time.to_string(), "2018-03-26 17:19:17.406");
        assert_eq!((r[1].humidity.as_str(), r[1].humidity_value()), (" None", None));
        assert_eq!(r[1].time.to_string(), "2018-03-26 17:19:18");
        assert_eq!(
            (r[2].temperature_value(), r[2].time.to_string().as_str()),
            (Some(-3.0), "2018-03-26 17:19:19.500")
        );
        assert_eq!(ds.devices(), vec!["dev-a", "dev-b"]);
        let lines: Vec<u64> = ds.by_device()["dev-a"].iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4]);
    }

    #[test]
    fn empty_and_header_only_files_are_rejected() {
        let err = load_str("").unwrap_err();
        assert!(matches!(err, DatasetError::Empty { .. }), "{err:?}");
        assert!(err.to_string().starts_with("datasets/x.csv: empty file"));
        let err = load_str(HEADER).unwrap_err();
        assert!(matches!(err, DatasetError::NoRows { .. }), "{err:?}");
        assert_eq!(err.to_string(), "datasets/x.csv: no data rows after the header");
    }

    #[test]
    fn bad_headers_are_named() {
        let msg = |h: &str| load_str(&format!("{h}\n{GOOD}")).unwrap_err().to_string();
        let extra = msg("device_id,humidity,temperature,time,extra");
        assert!(extra.starts_with("datasets/x.csv:1: header: unexpected column 'extra'"), "{extra}");
        assert!(msg("device_id,humidity,time").contains("missing column 'temperature'"));
        let dup = msg("device_id,humidity,humidity,time");
        assert!(
            dup.contains("column 'humidity' appears twice") && dup.contains("missing column 'temperature'")
        );
    }

    #[test]
    fn each_bad_field_names_file_line_and_field() {
        let cases = [
            (
                "dev,abc,40,2018-03-26 17:19:17",
                "datasets/x.csv:3: field 'humidity': expected a number or None, found \"abc\"",
            ),
            (
                "dev,21,,2018-03-26 17:19:17",
                "datasets/x.csv:3: field 'temperature': expected a number or None, found \"\"",
            ),
            (
                "dev,21,NaN,2018-03-26 17:19:17",
                "datasets/x.csv:3: field 'temperature': expected a number or None, found \"NaN\"",
            ),
            (" ,21,40,2018-03-26 17:19:17", "datasets/x.csv:3: field 'device_id': must not be empty"),
            ("dev,21,40", "datasets/x.csv:3: expected 4 fields, found 3"),
            ("dev,21,40,2018-03-26 17:19:17,x", "datasets/x.csv:3: expected 4 fields, found 5"),
            (
                "dev,21,40,2018-03-26T17:19:17",
                "datasets/x.csv:3: field 'time': expected YYYY-MM-DD HH:MM:SS[.fraction] or YYYY-MM-DDTHH:MM:SS[.fff]Z, found \"2018-03-26T17:19:17\"",
            ),
            (
                "dev,21,40,2018-03-26 17:19:17.1234567890",
                "datasets/x.csv:3: field 'time': expected YYYY-MM-DD HH:MM:SS[.fraction] or YYYY-MM-DDTHH:MM:SS[.fff]Z, found \"2018-03-26 17:19:17.1234567890\"",
            ),
            (
                "dev,21,40,2018-03-26 17:19:17.",
                "datasets/x.csv:3: field 'time': expected YYYY-MM-DD HH:MM:SS[.fraction] or YYYY-MM-DDTHH:MM:SS[.fff]Z, found \"2018-03-26 17:19:17.\"",
            ),
            (
                "dev,21,40, 2018-03-26 17:19:17",
                "datasets/x.csv:3: field 'time': expected YYYY-MM-DD HH:MM:SS[.fraction] or YYYY-MM-DDTHH:MM:SS[.fff]Z, found \" 2018-03-26 17:19:17\"",
            ),
            (
                "dev,21,40,2018-02-30 17:19:17",
                "datasets/x.csv:3: field 'time': not a valid calendar date, found \"2018-02-30 17:19:17\"",
            ),
            (
                "dev,21,40,2018-03-26 24:00:00",
                "datasets/x.csv:3: field 'time': not a valid time of day, found \"2018-03-26 24:00:00\"",
            ),
        ];
        for (row, expected) in cases {
            let (problems, total, shown) = row_problems(&format!("{HEADER}{GOOD}{row}\n"));
            assert_eq!((total, shown.as_str()), (1, expected), "row {row:?}");
            assert_eq!(problems[0].line, 3);
        }
    }

    #[test]
    fn invalid_utf8_is_a_field_problem() {
        let mut bytes = format!("{HEADER}{GOOD}").into_bytes();
        bytes.extend_from_slice(b"dev,21,\xff,2018-03-26 17:19:17\n");
        let err = Dataset::from_reader("b.csv", &bytes[..]).unwrap_err();
        assert_eq!(err.to_string(), "b.csv:3: field 'temperature': not valid UTF-8");
    }

    #[test]
    fn all_problems_are_reported_up_to_the_limit() {
        let mut text = format!("{HEADER}{GOOD}dev,x,y,2018-03-26 17:19:17\n{GOOD},21,40,bad\n");
        let (problems, total, shown) = row_problems(&text);
        assert_eq!(total, 4);
        let fields: Vec<_> = problems.iter().map(|p| (p.line, p.field)).collect();
        let expected =
            [(3, Some("humidity")), (3, Some("temperature")), (5, Some("device_id")), (5, Some("time"))];
        assert_eq!(fields, expected);
        assert_eq!(shown.lines().count(), 4);
        assert!(shown.lines().all(|l| l.starts_with("datasets/x.csv:")));

        for _ in 0..30 {
            text.push_str("dev,21,hot,2018-03-26 17:19:17\n");
        }
        let (problems, total, shown) = row_problems(&text);
        assert_eq!((problems.len(), total), (MAX_REPORTED_PROBLEMS, 34));
        assert_eq!(shown.lines().count(), MAX_REPORTED_PROBLEMS + 1);
        assert!(shown.ends_with("datasets/x.csv: ... and 14 more problem(s) not shown"), "{shown}");
    }
}
