//! Reading a trailer that repeats the last one: consecutive records of a log mostly differ only
//! in their time of day (same component, date, bias and thread).

use chrono::NaiveDate;

use super::{clock_utc, fast_trailer_on, Trailer};

/// The last trailer read and what it said. Consecutive records of a log mostly differ only in
/// their time of day (same component, date, bias and thread): a trailer equal to the last one
/// outside its clock is read by comparing words and reading the clock alone, with the same
/// result as `fast_trailer` (a property test compares them).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TrailerMemo<'a> {
    /// The last trailer (after `$$<`); empty before the first.
    raw: &'a [u8],
    /// Where its `HH:MM:SS.mmm` starts; its component's length.
    clock_at: usize,
    component_len: usize,
    local_date: NaiveDate,
    bias: i32,
    thread: u32,
}

/// Length of `HH:MM:SS.mmm`.
const CLOCK_LEN: usize = 12;

impl<'a> TrailerMemo<'a> {
    /// What `fast_trailer` gives for `input`; remembered for the next call.
    #[inline(always)]
    pub(crate) fn read(&mut self, input: &'a str) -> Option<Trailer<'a>> {
        let (b, last, at) = (input.as_bytes(), self.raw, self.clock_at);
        if b.len() == last.len()
            && !last.is_empty()
            && same_bytes(&b[..at], &last[..at])
            && same_bytes(&b[at + CLOCK_LEN..], &last[at + CLOCK_LEN..])
        {
            if let Some(time) = clock_utc(&b[at..at + CLOCK_LEN], self.local_date, self.bias) {
                let component = &input[..self.component_len];
                return Some(Trailer { component, time, bias_minutes: self.bias, thread: self.thread });
            }
        }
        let (trailer, local_date) = fast_trailer_on(input)?;
        *self = TrailerMemo {
            raw: b,
            // The component, `><`, then `MM-DD-YYYY ` (the only layout `fixed_utc` reads).
            clock_at: trailer.component.len() + 2 + 11,
            component_len: trailer.component.len(),
            local_date,
            bias: trailer.bias_minutes,
            thread: trailer.thread,
        };
        Some(trailer)
    }
}

/// `a == b`, a word at a time (the last word overlapping), without a `memcmp` call: these are a
/// few dozen bytes.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() || n < 8 {
        return a == b;
    }
    let word = |s: &[u8], i: usize| u64::from_le_bytes(<[u8; 8]>::try_from(&s[i..i + 8]).unwrap_or_default());
    let mut diff = word(a, n - 8) ^ word(b, n - 8);
    let mut i = 0;
    while i + 8 < n {
        diff |= word(a, i) ^ word(b, i);
        i += 8;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::super::fast_trailer;
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A log's trailers, drawn from few values so that consecutive ones often repeat all but the
    /// clock (what the memo is for), with invalid clocks, dates and biases among them.
    fn trailers() -> impl proptest::strategy::Strategy<Value = Vec<String>> {
        use proptest::prelude::*;
        let components = ["SMS_WSUS_SYNC_MANAGER", "X", "SMS>ODD"];
        let dates = ["08-02-2024", "12-31-2024", "02-29-2024", "02-30-2024", "1-02-2024"];
        let clocks = [
            "16:39:05.707",
            "16:39:06.001",
            "00:00:00.000",
            "23:59:60.500",
            "24:00:00.000",
            "23:60:00.000",
            "1:00:00.000",
            "10:00:0x.000",
            "10-00:00.000",
            "10:00:00,000",
            "23:59:59.999",
        ];
        let biases = ["+240", "-330", "+0", "+1440", "-1440", "+1441", "+04800"];
        let threads = ["9640 (0x25A8)", "1", "4294967295 (0xFFFFFFFF)", "4294967296", " (0x1)"];
        let pick = (0..components.len(), 0..dates.len(), 0..clocks.len(), 0..biases.len(), 0..threads.len());
        proptest::collection::vec((pick, 0u8..4), 1..40).prop_map(move |picks| {
            let mut last = (0, 0, 0, 0, 0);
            picks
                .into_iter()
                .map(|(pick, keep)| {
                    // Mostly the last trailer with another clock.
                    let (c, d, k, b, t) =
                        if keep > 0 { (last.0, last.1, pick.2, last.3, last.4) } else { pick };
                    last = (c, d, k, b, t);
                    format!(
                        "{}><{} {}{}><thread={}>",
                        components[c], dates[d], clocks[k], biases[b], threads[t]
                    )
                })
                .collect()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        /// Read through the memo, every trailer of a sequence is what it is read alone.
        #[test]
        fn the_memo_reads_what_the_trailer_says(trailers in trailers()) {
            let mut memo = TrailerMemo::default();
            for t in &trailers {
                proptest::prop_assert_eq!(memo.read(t), fast_trailer(t), "{}", t);
            }
        }
    }

    #[test]
    fn the_memo_reads_the_clock_only_when_the_rest_repeats() {
        let mut memo = TrailerMemo::default();
        let first = "C><08-02-2024 16:39:05.707+240><thread=9640 (0x25A8)>";
        assert_eq!(memo.read(first), fast_trailer(first));
        // Same length, another bias: not the clock alone, so read in full.
        let other = "C><08-02-2024 16:39:05.707-240><thread=9640 (0x25A8)>";
        assert_eq!(memo.read(other).map(|t| t.bias_minutes), Some(-240));
        let later = "C><08-02-2024 23:59:59.999-240><thread=9640 (0x25A8)>";
        assert_eq!(memo.read(later).map(|t| t.time), Some(utc("2024-08-02T19:59:59.999Z")));
        assert_eq!(memo.read("C><08-02-2024 23:59:5x.999-240><thread=9640 (0x25A8)>"), None);
    }
}
