//! The status message layout every ConfigMgr server writes, read straight through:
//!
//! ```text
//! ID=n SEV=x LEV=x SOURCE="..." COMP="..." SYS=x SITE=x PID=n TID=n
//!   GMTDATE=Ddd Mmm DD HH:MM:SS.mmm YYYY ISTR0="..." ... ISTR9="..." NUMATTRS=0 [LE=0X...]
//! ```
//!
//! This is the hot path (one record in ten is a status message). It gives up (`None`) at the
//! first thing it does not expect: unknown keys, missing keys, attributes, a localized or padded
//! `GMTDATE`, a value whose closing quote is not followed by the next key, a bad number. The
//! general grammar in the parent module then reads the message; where this path does answer, it
//! answers exactly as the general one would (a property test checks it).

use std::borrow::Cow;

use chrono::{DateTime, NaiveTime, Utc};
use statmsg_schema::StatusMessage;

use crate::datetime::{cached_date, ENGLISH_MONTHS};

/// `ISTRk=` for k in 0..10. Fixed-size arrays, so that every comparison has a constant length
/// (a few wide loads rather than a `memcmp` call or a byte loop).
const ISTR_KEYS: [&[u8; 6]; 10] = [
    b"ISTR0=", b"ISTR1=", b"ISTR2=", b"ISTR3=", b"ISTR4=", b"ISTR5=", b"ISTR6=", b"ISTR7=", b"ISTR8=",
    b"ISTR9=",
];

/// What follows the value of `ISTRk` for k in 0..9 (the parent's `ISTR_NEXT`, sized).
const ISTR_NEXT: [&[u8; 8]; 9] = [
    b" ISTR1=\"",
    b" ISTR2=\"",
    b" ISTR3=\"",
    b" ISTR4=\"",
    b" ISTR5=\"",
    b" ISTR6=\"",
    b" ISTR7=\"",
    b" ISTR8=\"",
    b" ISTR9=\"",
];

/// Reads `body` (the trimmed message) from `start`, just after `STATMSG: `.
pub(super) fn canonical(body: &str, start: usize) -> Option<StatusMessage<'_>> {
    let mut c = Straight { text: body, pos: start };
    c.key(b"ID=")?;
    let id = c.token().parse().ok()?;
    c.key(b"SEV=")?;
    let sev = c.token();
    c.key(b"LEV=")?;
    let lev = c.token();
    c.key(b"SOURCE=")?;
    let source = c.quoted(b" COMP=\"")?;
    c.key(b"COMP=")?;
    let comp = c.quoted(b" SYS=")?;
    c.key(b"SYS=")?;
    let sys = c.token();
    c.key(b"SITE=")?;
    let site = c.token();
    c.key(b"PID=")?;
    let pid = c.token().parse().ok()?;
    c.key(b"TID=")?;
    let tid = c.token().parse().ok()?;
    c.key(b"GMTDATE=")?;
    let gmtdate = english_gmtdate(c.rest())?;
    c.pos += ENGLISH_GMTDATE_LEN;
    c.skip_spaces();
    // Present and empty: borrowed, as the general grammar gives them.
    let mut istr: [Cow<'_, str>; 10] = [const { Cow::Borrowed("") }; 10];
    // Most status messages of a sync carry no insertion strings: one comparison for all ten.
    if c.key(EMPTY_ISTRS).is_none() {
        for (k, slot) in istr.iter_mut().enumerate() {
            c.key(ISTR_KEYS[k])?;
            *slot = Cow::Borrowed(match ISTR_NEXT.get(k) {
                Some(next) => c.quoted(next)?,
                None => c.quoted(b" NUMATTRS=")?,
            });
        }
        c.key(b"NUMATTRS=")?;
    }
    if c.token().parse::<u32>().ok()? != 0 {
        return None;
    }
    let le = if c.pos == body.len() {
        None
    } else {
        c.key(b"LE=")?;
        Some(super::last_error(c.token())?)
    };
    if c.pos != body.len() {
        return None;
    }
    Some(StatusMessage {
        id,
        sev: Cow::Borrowed(sev),
        lev: Cow::Borrowed(lev),
        source: Cow::Borrowed(source),
        comp: Cow::Borrowed(comp),
        sys: Cow::Borrowed(sys),
        site: Cow::Borrowed(site),
        pid,
        tid,
        gmtdate,
        istr,
        attrs: Vec::new(),
        le,
        extra: Vec::new(),
    })
}

/// Ten empty insertion strings and the key after them, as the loop over `ISTRk` would read them.
const EMPTY_ISTRS: &[u8; 99] = b"ISTR0=\"\" ISTR1=\"\" ISTR2=\"\" ISTR3=\"\" ISTR4=\"\" ISTR5=\"\" ISTR6=\"\" ISTR7=\"\" ISTR8=\"\" ISTR9=\"\" NUMATTRS=";

/// A cursor that only moves forward over what it expects.
struct Straight<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Straight<'a> {
    #[inline(always)]
    fn rest(&self) -> &'a [u8] {
        self.text.as_bytes().get(self.pos..).unwrap_or_default()
    }

    /// Steps over `key` (with its `=`) if it is next.
    #[inline(always)]
    fn key<const N: usize>(&mut self, key: &[u8; N]) -> Option<()> {
        starts_with(self.rest(), key).then(|| self.pos += N)
    }

    #[inline(always)]
    fn skip_spaces(&mut self) {
        let bytes = self.text.as_bytes();
        while bytes.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    /// An unquoted value: up to the next space (tokens are short: a plain scan).
    #[inline(always)]
    fn token(&mut self) -> &'a str {
        let rest = self.rest();
        let len = super::super::text::find_byte(rest, b' ').unwrap_or(rest.len());
        let value = &self.text[self.pos..self.pos + len];
        self.pos += len;
        self.skip_spaces();
        value
    }

    /// `"value"` ending at the first `"` followed by `next`.
    #[inline(always)]
    fn quoted<const N: usize>(&mut self, next: &[u8; N]) -> Option<&'a str> {
        let rest = self.rest().strip_prefix(b"\"")?;
        let closes = |i: usize| starts_with(&rest[i + 1..], next);
        // Most values are empty or short: a plain scan of the first bytes costs less than setting
        // up a vector search.
        let near = rest.len().min(24);
        let mut end = 0;
        while end < near && !(rest[end] == b'"' && closes(end)) {
            end += 1;
        }
        if end == near {
            end = memchr::memchr_iter(b'"', &rest[near..]).map(|i| i + near).find(|&i| closes(i))?;
        }
        let value = &self.text[self.pos + 1..self.pos + 1 + end];
        self.pos += end + 2;
        self.skip_spaces();
        Some(value)
    }
}

/// `hay.starts_with(prefix)` for a prefix of constant length.
#[inline(always)]
fn starts_with<const N: usize>(hay: &[u8], prefix: &[u8; N]) -> bool {
    hay.get(..N).is_some_and(|head| head == prefix)
}

/// Length of `Thu Aug 01 10:00:05.552 2024`.
pub(super) const ENGLISH_GMTDATE_LEN: usize = 28;

/// `GMTDATE` as servers running in English write it (`Thu Aug 01 10:00:05.552 2024`, then a
/// space or the end), read in place; `None` for anything else (localized names, padded days,
/// other precision), which the general path reads. The day name is not read (neither does the
/// general path), but it must be one word, as the general path needs it to be.
#[inline]
pub(super) fn english_gmtdate(b: &[u8]) -> Option<DateTime<Utc>> {
    if b.len() < ENGLISH_GMTDATE_LEN || b.get(ENGLISH_GMTDATE_LEN).is_some_and(|&c| c != b' ') {
        return None;
    }
    if [3, 7, 10, 23].iter().any(|&i| b[i] != b' ')
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[..3].iter().any(u8::is_ascii_whitespace)
    {
        return None;
    }
    let digit = |k: usize| -> Option<u32> {
        let x = b[k].wrapping_sub(b'0');
        (x < 10).then_some(u32::from(x))
    };
    let two = |k: usize| Some(digit(k)? * 10 + digit(k + 1)?);
    let month = ENGLISH_MONTHS.iter().position(|m| m.as_bytes() == &b[4..7])? as u32 + 1;
    let year = two(24)? * 100 + two(26)?;
    let millis = digit(20)? * 100 + digit(21)? * 10 + digit(22)?;
    let date = cached_date(year, month, two(8)?)?;
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    // A leap second (`:60`) is chrono's second 59 with a nanosecond count past 1e9, as in
    // `parse_clock`.
    let time = match second {
        60 => NaiveTime::from_hms_nano_opt(hour, minute, 59, 1_000_000_000 + millis * 1_000_000),
        _ => NaiveTime::from_hms_milli_opt(hour, minute, second, millis),
    }?;
    Some(date.and_time(time).and_utc())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{general, Parsed};
    use super::*;

    const CANONICAL: &[&str] = &[
        "STATMSG: ID=6703 SEV=E LEV=M SOURCE=\"SMS Server\" COMP=\"SMS_WSUS_SYNC_MANAGER\" SYS=CM1.contoso.com SITE=CHQ PID=2836 TID=9640 GMTDATE=Fri Aug 02 20:54:26.571 2024 ISTR0=\"WSUS server not configured. Please refer to \"WCM.log\"\" ISTR1=\"\" ISTR2=\"\" ISTR3=\"\" ISTR4=\"\" ISTR5=\"\" ISTR6=\"\" ISTR7=\"\" ISTR8=\"\" ISTR9=\"\" NUMATTRS=0 LE=0X8013150a",
        "STATMSG: ID=6702 SEV=I LEV=M SOURCE=\"SMS Server\" COMP=\"SMS_WSUS_SYNC_MANAGER\" SYS=CS1SITE.CONTOSO.COM SITE=CS1 PID=432 TID=3404 GMTDATE=Thu Jan 16 18:53:52.608 2014 ISTR0=\"\" ISTR1=\"\" ISTR2=\"\" ISTR3=\"\" ISTR4=\"\" ISTR5=\"\" ISTR6=\"\" ISTR7=\"\" ISTR8=\"\" ISTR9=\"\" NUMATTRS=0",
        "STATMSG: ID=6705 SEV=I LEV=M SOURCE=\"SMS Server\" COMP=\"SMS_WSUS_SYNC_MANAGER\" SYS=s SITE=P01 PID=1 TID=2 GMTDATE=Sat Dec 31 23:59:60.500 2016 ISTR0=\"a \"quoted\" word\" ISTR1=\"x=\"y\"\" ISTR2=\"äöü € 字\" ISTR3=\"\" ISTR4=\"\" ISTR5=\"\" ISTR6=\"\" ISTR7=\"\" ISTR8=\"\" ISTR9=\"last\" NUMATTRS=0",
    ];

    /// What the general grammar makes of `body`.
    fn by_general(body: &str) -> Option<StatusMessage<'_>> {
        match general(body, None) {
            Ok(Some(Parsed::Full(m))) => Some(m),
            _ => None,
        }
    }

    #[test]
    fn the_usual_layout_takes_the_straight_path_and_agrees() {
        for body in CANONICAL {
            let fast = canonical(body, "STATMSG: ".len()).unwrap_or_else(|| panic!("not canonical: {body}"));
            assert_eq!(Some(&fast), by_general(body).as_ref(), "{body}");
        }
    }

    #[test]
    fn the_sized_keys_are_the_grammars() {
        assert_eq!(ISTR_NEXT.map(|k| &k[..]), super::super::ISTR_NEXT.map(str::as_bytes));
        for (k, key) in ISTR_KEYS.iter().enumerate() {
            assert_eq!(&key[..], format!("{}=", super::super::ISTR_KEYS[k]).as_bytes());
        }
    }

    #[test]
    fn anything_unusual_is_left_to_the_general_grammar() {
        let base = CANONICAL[1];
        for changed in [
            base.replace(" SITE=CS1", " SITE=CS1 EXTRA=1"),
            base.replace("NUMATTRS=0", "NUMATTRS=1 AID0=409 AVAL0=\"CS1\""),
            base.replace("Thu Jan 16", "Do Jan 16").replace("Jan", "Jän"),
            base.replace("Jan 16", "Jan  6"),
            // Found by review: a blank day name shifts the words; the grammar rejects it.
            base.replace("Thu Jan", "    Jan"),
            base.replace("Thu Jan", "T\th Jan"),
            base.replace(" ISTR9=\"\"", ""),
            base.replace("ID=6702", "ID=99999"),
            format!("{base} LE=zz"),
            format!("{base} TAIL=1"),
        ] {
            assert_eq!(canonical(&changed, "STATMSG: ".len()), None, "{changed}");
        }
    }

    /// Real lines with bytes replaced, inserted, removed and cut.
    fn mutated() -> impl Strategy<Value = String> {
        let edits = proptest::collection::vec((any::<u16>(), "[ -~\"=é]", 0u8..4), 0..6);
        (0..CANONICAL.len(), edits).prop_map(|(i, edits)| {
            let mut s: Vec<char> = CANONICAL[i].chars().collect();
            for (at, text, op) in edits {
                let at = usize::from(at) % (s.len() + 1);
                let c = text.chars().next().unwrap_or(' ');
                match op {
                    0 if at < s.len() => s[at] = c,
                    1 => s.insert(at, c),
                    2 if at < s.len() => {
                        s.remove(at);
                    }
                    _ => s.truncate(at.max("STATMSG: ".len())),
                }
            }
            s.into_iter().collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// Wherever the straight path answers, the general grammar gives the same message.
        #[test]
        fn the_straight_path_never_disagrees(body in mutated()) {
            prop_assume!(body.starts_with("STATMSG: "));
            let body = body.trim_end_matches([' ', '~']);
            if let Some(fast) = canonical(body, "STATMSG: ".len()) {
                prop_assert_eq!(Some(fast), by_general(body));
            }
        }
    }
}
