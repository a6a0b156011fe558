//! Captured series in the ChaosMeshWizard's CSV format: a `Metric,Time,Value` header, then one sample per
//! line with the time in unix seconds (`Lag_Input_Topic,1734616088.417,155727`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

/// One metric's samples, in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Times, unix seconds.
    pub times: Vec<f64>,
    /// Values.
    pub values: Vec<f64>,
}

impl Series {
    /// Adds a sample.
    pub fn push(&mut self, time: f64, value: f64) {
        self.times.push(time);
        self.values.push(value);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True without samples.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// A bad line of a CSV file.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct CsvError {
    /// The file.
    pub file: String,
    /// Its line (1-based).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// Reads a wizard CSV: the series per metric name. Every bad line is an error naming it.
pub fn read(path: &Path) -> Result<BTreeMap<String, Series>, CsvError> {
    let file = path.display().to_string();
    let err = |line: u64, message: String| CsvError { file: file.clone(), line, message };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|e| err(0, format!("cannot read: {e}")))?;
    let headers = reader.headers().map_err(|e| err(1, e.to_string()))?.clone();
    let cols: Vec<&str> = headers.iter().map(str::trim).collect();
    if cols != ["Metric", "Time", "Value"] {
        return Err(err(
            1,
            format!("the header is {:?}, not Metric,Time,Value", headers.iter().collect::<Vec<_>>()),
        ));
    }
    let mut out: BTreeMap<String, Series> = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            err(line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let number = |i: usize, what: &str| -> Result<f64, CsvError> {
            let text = record.get(i).unwrap_or("").trim();
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| err(line, format!("{what} {text:?} is not a number")))
        };
        let metric = record.get(0).unwrap_or("").trim();
        if metric.is_empty() {
            return Err(err(line, "the metric name is empty".into()));
        }
        let (time, value) = (number(1, "Time")?, number(2, "Value")?);
        let series = out.entry(metric.to_string()).or_default();
        if series.times.last().is_some_and(|t| *t > time) {
            return Err(err(line, format!("time {time} goes back (the samples must be in time order)")));
        }
        series.push(time, value);
    }
    Ok(out)
}

/// Writes series as a wizard CSV (metrics in name order, each in time order).
pub fn write(path: &Path, series: &BTreeMap<String, Series>) -> anyhow::Result<()> {
    let mut text = String::from("Metric,Time,Value\n");
    for (metric, s) in series {
        for (t, v) in s.times.iter().zip(&s.values) {
            text.push_str(&format!("{metric},{t:.3},{v}\n"));
        }
    }
    let mut f = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_lines_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        let mut s = BTreeMap::new();
        let mut lag = Series::default();
        lag.push(1734616088.417, 155727.0);
        lag.push(1734616090.417, 134912.5);
        s.insert("Lag_Input_Topic".to_string(), lag);
        write(&path, &s).unwrap();
        assert_eq!(read(&path).unwrap(), s);
        std::fs::write(&path, "Metric,Time,Value\nLag,1,2\nLag,2,x\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.ends_with("a.csv:3: Value \"x\" is not a number"), "{e}");
        std::fs::write(&path, "Metric,Time,Value\nLag,5,2\nLag,2,1\n").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains(":3: time 2 goes back"));
        std::fs::write(&path, "Time,Value\n1,2\n").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains(":1: the header is"));
        std::fs::write(&path, "Metric,Time,Value\nLag,1\n").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains(":2:"), "a short line");
    }
}
