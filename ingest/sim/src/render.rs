//! Turning a site's timeline into files as a site server writes them: local time with the
//! zone's bias of the moment (daylight saving changes it), the site's encoding, rollover at a
//! size (`X.log` -> `X.lo_`, older rolls kept as `X-YYYYMMDD-HHMMSS.log` history files).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use serde::Serialize;

use statmsg_parse::ROLLOVER_MARKER;

/// A Windows time zone with its bias rule (UTC = local + bias, in minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    Utc,
    /// US Eastern: +300, +240 from the second Sunday of March to the first Sunday of November.
    UsEastern,
    /// US Pacific: +480 / +420, same rule.
    UsPacific,
    /// Central Europe: -60, -120 from the last Sunday of March to the last Sunday of October.
    CentralEurope,
    /// India: -330, no daylight saving.
    India,
}

impl Zone {
    pub const ALL: [Zone; 5] =
        [Zone::UsEastern, Zone::CentralEurope, Zone::UsPacific, Zone::India, Zone::Utc];

    /// The bias in force at `t`.
    pub fn bias(self, t: DateTime<Utc>) -> i32 {
        let year = t.year();
        match self {
            Zone::Utc => 0,
            Zone::India => -330,
            Zone::UsEastern | Zone::UsPacific => {
                let standard = if self == Zone::UsEastern { 300 } else { 480 };
                // 02:00 local standard time, and 02:00 local daylight time.
                let begins = at(nth_weekday(year, 3, 2), 2 * 60 + standard);
                let ends = at(nth_weekday(year, 11, 1), 2 * 60 + standard - 60);
                if t >= begins && t < ends {
                    standard - 60
                } else {
                    standard
                }
            }
            Zone::CentralEurope => {
                let begins = at(last_sunday(year, 3), 60);
                let ends = at(last_sunday(year, 10), 60);
                if t >= begins && t < ends {
                    -120
                } else {
                    -60
                }
            }
        }
    }
}

fn at(day: NaiveDate, utc_minutes: i32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
        + Duration::minutes(i64::from(utc_minutes))
}

fn nth_weekday(year: i32, month: u32, n: u8) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, n).unwrap_or_default()
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    (1..=5)
        .rev()
        .find_map(|n| NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, n))
        .unwrap_or_default()
}

/// How a site's logs are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileEncoding {
    Utf8Bom,
    Utf8,
    Utf16LeBom,
}

impl FileEncoding {
    fn bom(self) -> &'static [u8] {
        match self {
            FileEncoding::Utf8Bom => b"\xEF\xBB\xBF",
            FileEncoding::Utf8 => b"",
            FileEncoding::Utf16LeBom => b"\xFF\xFE",
        }
    }

    fn encode(self, text: &str, out: &mut Vec<u8>) {
        match self {
            FileEncoding::Utf16LeBom => {
                text.encode_utf16().for_each(|u| out.extend_from_slice(&u.to_le_bytes()))
            }
            _ => out.extend_from_slice(text.as_bytes()),
        }
    }
}

/// One server-format line: `message  $$<COMP><MM-DD-YYYY HH:MM:SS.mmm+BIAS><thread=N (0xN)>`.
pub fn server_line(
    message: &str,
    component: &str,
    t: DateTime<Utc>,
    zone: Zone,
    thread: u32,
    out: &mut String,
) {
    let bias = zone.bias(t);
    let local = t - Duration::minutes(i64::from(bias));
    statmsg_parse::synth::write_server_line(out, message, component, local.naive_utc(), bias, thread);
}

/// Writes one log (`name`.log and its rolls) from rendered lines with their times.
#[derive(Debug)]
pub struct RollingWriter {
    dir: PathBuf,
    name: String,
    encoding: FileEncoding,
    zone: Zone,
    roll_bytes: usize,
    keep_history: bool,
    current: Vec<u8>,
    /// Rolled files, oldest first, with the (local) time they rolled.
    rolled: Vec<(Vec<u8>, DateTime<Utc>)>,
}

impl RollingWriter {
    pub fn new(
        dir: &Path,
        name: &str,
        encoding: FileEncoding,
        zone: Zone,
        roll_bytes: usize,
        keep_history: bool,
    ) -> Self {
        RollingWriter {
            dir: dir.to_owned(),
            name: name.to_owned(),
            encoding,
            zone,
            roll_bytes,
            keep_history,
            current: encoding.bom().to_vec(),
            rolled: Vec::new(),
        }
    }

    /// Appends one rendered line (with its CRLF) written at `t`, rolling first when it would
    /// take the file past its size.
    pub fn append(&mut self, line: &str, t: DateTime<Utc>) {
        let size = if self.encoding == FileEncoding::Utf16LeBom { line.len() * 2 } else { line.len() };
        if self.current.len() + size > self.roll_bytes && self.current.len() > self.encoding.bom().len() {
            self.encoding.encode(&format!("{ROLLOVER_MARKER}\r\n"), &mut self.current);
            let full = std::mem::replace(&mut self.current, self.encoding.bom().to_vec());
            self.rolled.push((full, t));
            if !self.keep_history && self.rolled.len() > 1 {
                self.rolled.remove(0);
            }
        }
        self.encoding.encode(line, &mut self.current);
    }

    /// Writes the files; returns their paths (history, `.lo_`, `.log`) and total bytes.
    pub fn finish(self) -> std::io::Result<(Vec<PathBuf>, u64)> {
        std::fs::create_dir_all(&self.dir)?;
        let mut paths = Vec::new();
        let mut bytes = 0;
        let last = self.rolled.len().saturating_sub(1);
        for (i, (content, t)) in self.rolled.iter().enumerate() {
            let local = *t - Duration::minutes(i64::from(self.zone.bias(*t)));
            let name = if i == last {
                format!("{}.lo_", self.name)
            } else {
                format!("{}-{}.log", self.name, local.format("%Y%m%d-%H%M%S"))
            };
            let path = self.dir.join(name);
            std::fs::write(&path, content)?;
            bytes += content.len() as u64;
            paths.push(path);
        }
        let path = self.dir.join(format!("{}.log", self.name));
        std::fs::write(&path, &self.current)?;
        bytes += self.current.len() as u64;
        paths.push(path);
        Ok((paths, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn daylight_saving_rules() {
        // 2024: US DST from March 10 07:00 UTC (02:00 EST) to November 3 06:00 UTC (02:00 EDT).
        assert_eq!(Zone::UsEastern.bias(utc("2024-03-10T06:59:59Z")), 300);
        assert_eq!(Zone::UsEastern.bias(utc("2024-03-10T07:00:00Z")), 240);
        assert_eq!(Zone::UsEastern.bias(utc("2024-11-03T05:59:59Z")), 240);
        assert_eq!(Zone::UsEastern.bias(utc("2024-11-03T06:00:00Z")), 300);
        // EU: March 31 and October 27, 01:00 UTC.
        assert_eq!(Zone::CentralEurope.bias(utc("2024-03-31T00:59:59Z")), -60);
        assert_eq!(Zone::CentralEurope.bias(utc("2024-03-31T01:00:00Z")), -120);
        assert_eq!(Zone::CentralEurope.bias(utc("2024-10-27T01:00:00Z")), -60);
        assert_eq!(Zone::India.bias(utc("2024-06-01T00:00:00Z")), -330);
    }

    #[test]
    fn lines_carry_local_time_and_the_bias_of_the_moment() {
        let mut s = String::new();
        server_line(
            "Starting Sync",
            "SMS_WSUS_SYNC_MANAGER",
            utc("2024-03-10T07:30:00Z"),
            Zone::UsEastern,
            10,
            &mut s,
        );
        assert_eq!(
            s,
            "Starting Sync  $$<SMS_WSUS_SYNC_MANAGER><03-10-2024 03:30:00.000+240><thread=10 (0xA)>\r\n"
        );
        let record = statmsg_parse::parse_line(s.trim_end());
        assert_eq!(record.time, Some(utc("2024-03-10T07:30:00Z")));
    }

    #[test]
    fn rolls_at_the_size_with_marker_bom_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let mut w =
            RollingWriter::new(dir.path(), "WsyncMgr", FileEncoding::Utf16LeBom, Zone::Utc, 200, true);
        let t = utc("2024-03-01T00:00:00Z");
        for i in 0..10 {
            let mut line = String::new();
            server_line(&format!("line {i}"), "C", t + Duration::seconds(i), Zone::Utc, 1, &mut line);
            w.append(&line, t + Duration::seconds(i));
        }
        let (paths, _) = w.finish().unwrap();
        let names: Vec<String> =
            paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert!(
            names.len() >= 3 && names.ends_with(&["WsyncMgr.lo_".into(), "WsyncMgr.log".into()]),
            "{names:?}"
        );
        assert!(names[0].starts_with("WsyncMgr-20240301-0000"), "{names:?}");
        for p in &paths {
            let bytes = std::fs::read(p).unwrap();
            assert!(bytes.starts_with(b"\xFF\xFE") && bytes.len() <= 200 + 100, "{} bytes", bytes.len());
        }
    }
}
