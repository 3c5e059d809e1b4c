//! Synthetic but realistic server-format logs (WsyncMgr.log narrative: wake-ups, phases,
//! progress, synchronized updates, outcomes; about one status message per ten records), for
//! benchmarks and tests. Deterministic for a given seed; no dependencies. [`write_server_line`]
//! is the one writer of a server-format line, for every log statmsg writes itself (the
//! simulator, this synthesizer, the tests).

use std::fmt::Write as _;

use chrono::{Duration, NaiveDate, NaiveDateTime};

/// Appends one server-format line to `out`:
/// `message  $$<COMPONENT><MM-DD-YYYY HH:MM:SS.mmm+BIAS><thread=N (0xN)>` and CRLF, at the
/// writer's `local` time with Windows' `bias` in minutes (UTC = local + bias).
pub fn write_server_line(
    out: &mut String,
    message: &str,
    component: &str,
    local: NaiveDateTime,
    bias: i32,
    thread: u32,
) {
    let _ = write!(
        out,
        "{message}  $$<{component}><{}{bias:+}><thread={thread} (0x{thread:X})>\r\n",
        local.format("%m-%d-%Y %H:%M:%S%.3f")
    );
}

/// A small deterministic PRNG (xorshift64*), enough to vary text.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A random update id, `8-4-4-4-12` hex digits.
    pub fn guid(&mut self) -> String {
        let (a, b, c, d) = (self.next_u64() as u32, self.below(65536), self.below(65536), self.below(65536));
        format!("{a:08x}-{b:04x}-{c:04x}-{d:04x}-{:012x}", self.next_u64() & 0xFFFF_FFFF_FFFF)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

const TITLES: [&str; 6] = [
    "Security Intelligence Update for Microsoft Defender Antivirus - KB2267602 (Version 1.401.1166.0)",
    "2024-08 Cumulative Update for Windows 11 Version 23H2 for x64-based Systems (KB5041585)",
    "Definition Update for Microsoft Endpoint Protection - KB2461484 (Definition 1.165.1945.0)",
    "2024-08 Cumulative Update for Microsoft server operating system version 21H2 for x64-based Systems (KB5041160)",
    "Microsoft Edge-Stable Channel Version 127 Update for x64 based Editions (Build 127.0.2651.105)",
    "2024-08 Security Update for Microsoft Office 2016 (KB5002605) 64-Bit Edition",
];

/// Appends server-format records to `out`: at least `bytes` bytes.
pub fn wsyncmgr_log(bytes: usize, seed: u64, out: &mut String) {
    let mut rng = Rng::new(seed);
    let target = out.len() + bytes;
    let mut writer = Writer { out, time: start_time(), bias: 240, site: "CS1", n: 0 };
    let mut version = 100;
    while writer.out.len() < target {
        version += 1;
        writer.sync_run(&mut rng, version);
    }
}

fn start_time() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 8, 1).and_then(|d| d.and_hms_opt(2, 0, 0)).unwrap_or_default()
}

struct Writer<'o> {
    out: &'o mut String,
    /// Local time of the next record.
    time: NaiveDateTime,
    bias: i32,
    site: &'static str,
    n: u64,
}

impl Writer<'_> {
    fn line(&mut self, rng: &mut Rng, message: &str) {
        self.n += 1;
        self.time += Duration::milliseconds(1 + rng.below(900) as i64);
        write_server_line(self.out, message, "SMS_WSUS_SYNC_MANAGER", self.time, self.bias, 9640);
        // About one status message per ten records.
        if self.n % 10 == 0 {
            let id = 6700 + rng.below(7) as u16;
            self.statmsg(id, "");
        }
    }

    fn statmsg(&mut self, id: u16, istr1: &str) {
        self.n += 1;
        let gmt = self.time + Duration::minutes(i64::from(self.bias));
        let sev = if id == 6703 { 'E' } else { 'I' };
        let message = format!(
            "STATMSG: ID={id} SEV={sev} LEV=M SOURCE=\"SMS Server\" COMP=\"SMS_WSUS_SYNC_MANAGER\" SYS=CM1.contoso.com SITE={} PID=2836 TID=9640 GMTDATE={} ISTR0=\"{}\" ISTR1=\"{istr1}\" ISTR2=\"\" ISTR3=\"\" ISTR4=\"\" ISTR5=\"\" ISTR6=\"\" ISTR7=\"\" ISTR8=\"\" ISTR9=\"\" NUMATTRS=0",
            self.site,
            gmt.format("%a %b %d %H:%M:%S%.3f %Y"),
            if istr1.is_empty() { "" } else { "Microsoft.UpdateServices.Administration.AdminProxy.CreateUpdateServer" },
        );
        write_server_line(self.out, &message, "SMS_WSUS_SYNC_MANAGER", self.time, self.bias, 9640);
    }

    fn sync_run(&mut self, rng: &mut Rng, version: u64) {
        self.time += Duration::minutes(30 + rng.below(600) as i64);
        self.line(rng, "Wakeup for scheduled regular sync");
        self.line(rng, "Starting Sync");
        self.line(rng, "Performing sync on regular schedule");
        self.line(rng, "Read SUPs from SCF for CS1SITE.CONTOSO.COM");
        self.line(rng, "Found 1 SUPs");
        self.line(rng, "Found active SUP CS1SITE.CONTOSO.COM from SCF File.");
        self.line(rng, "Synchronizing WSUS server cs1site.contoso.com ...");
        self.line(rng, "sync: Starting WSUS synchronization");
        self.line(rng, "sync: WSUS synchronizing categories");
        let total = 200 + rng.below(2000);
        let mut done = 0;
        while done < total {
            done = (done + 1 + rng.below(60)).min(total);
            let msg = format!(
                "sync: WSUS synchronizing updates, processed {done} out of {total} items ({}%), ETA in 00:{:02}:{:02}",
                done * 100 / total,
                rng.below(60),
                rng.below(60)
            );
            self.line(rng, &msg);
        }
        self.line(rng, "Done synchronizing WSUS Server cs1site.contoso.com");
        self.line(rng, "Sleeping 2 more minutes for WSUS server sync results to become available");
        self.line(rng, &format!("Set content version of update source {{C2D17964-BBDD-4339-B9F3-12D7205B39CC}} for site CS1 to {version}"));
        self.line(rng, "Synchronizing SMS database with WSUS server cs1site.contoso.com ...");
        self.line(rng, "sync: SMS synchronizing categories");
        let updates = 20 + rng.below(300);
        for k in 0..updates {
            let guid = rng.guid();
            let title = TITLES[rng.below(TITLES.len() as u64) as usize];
            self.line(rng, &format!("Synchronizing update {guid} - {title}"));
            if k % 25 == 0 {
                self.line(
                    rng,
                    &format!(
                        "sync: SMS synchronizing updates, processed {k} out of {updates} items ({}%)",
                        k * 100 / updates
                    ),
                );
            }
        }
        self.line(rng, "Done synchronizing SMS with WSUS Server cs1site.contoso.com");
        if rng.below(20) == 0 {
            let message = "The operation has timed out";
            self.line(rng, &format!("Sync failed: {message}. Source: Microsoft.UpdateServices.Administration.AdminProxy.CreateUpdateServer"));
            self.statmsg(6703, message);
            self.line(rng, "Sync failed. Will retry in 60 minutes");
            return;
        }
        self.statmsg(6702, "");
        self.line(rng, "Sync succeeded. Setting sync alert to canceled state on site CS1");
        self.line(
            rng,
            &format!(
                "Updated {updates} items in SMS database, new update source content version is {version}"
            ),
        );
        let (minutes, seconds) = (rng.below(60), rng.below(60));
        self.line(rng, &format!("Sync time: 0d00h{minutes:02}m{seconds:02}s"));
        self.line(rng, "Sending sync notification to child site(s): PS1, PS2");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_file_bytes, stats::Stats};

    #[test]
    fn appends_at_least_the_bytes_asked_for() {
        let mut text = String::from("x");
        wsyncmgr_log(10_000, 1, &mut text);
        let first = text.len();
        wsyncmgr_log(10_000, 2, &mut text);
        assert!(first > 10_000 && text.len() >= first + 10_000);
    }

    #[test]
    fn every_generated_record_parses_with_an_event() {
        let mut text = String::new();
        wsyncmgr_log(200_000, 7, &mut text);
        let (_, records) = parse_file_bytes(text.as_bytes());
        let mut stats = Stats::default();
        records.iter().for_each(|(_, r)| stats.add(r));
        assert_eq!(stats.kind("other"), 0, "{stats:?}");
        let statmsgs = stats.kind("status_message");
        assert!((statmsgs * 8..statmsgs * 13).contains(&stats.records), "{stats:?}");
    }
}
