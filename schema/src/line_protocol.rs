//! InfluxDB line protocol, written so that no value can change the shape of a point.
//!
//! Log text is hostile: an insertion string may hold `"`, `\`, `,`, `=`, spaces, newlines or
//! `~~`. Field string values escape `\` and `"`, which InfluxDB 1.x and 2.x (and VictoriaMetrics)
//! read back exactly, newlines included. Tag values escape `,`, `=` and space; but the protocol
//! has no escape for a backslash that ends a tag value or precedes one of those characters, nor
//! for line breaks, so such tag values are refused with [`LineProtocolError`] rather than
//! silently altered: the caller dead-letters the record.

use std::fmt::Write as _;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineProtocolError {
    #[error("tag {key:?} has a value InfluxDB line protocol cannot carry: {value:?}")]
    UnrepresentableTag { key: String, value: String },
    #[error("point {measurement:?} has no fields")]
    NoFields { measurement: String },
    #[error("time {0} is outside InfluxDB's range (1677-09-21 to 2262-04-11)")]
    TimestampOutOfRange(String),
}

/// Builds one point. Measurement and keys are statmsg's own names (checked in debug builds);
/// only values come from outside.
#[derive(Debug)]
pub struct PointBuilder<'b> {
    out: &'b mut String,
    start: usize,
    fields: usize,
    measurement: &'static str,
    /// The key of the tag added last (checked in debug builds: keys in order).
    last_tag: &'static str,
}

impl<'b> PointBuilder<'b> {
    /// Starts a point at the end of `out`. Tags must all be added before the first field.
    pub fn new(out: &'b mut String, measurement: &'static str) -> Self {
        debug_assert!(is_plain_key(measurement), "measurement {measurement:?}");
        let start = out.len();
        out.push_str(measurement);
        PointBuilder { out, start, fields: 0, measurement, last_tag: "" }
    }

    /// Adds a tag; an empty value is omitted (InfluxDB refuses empty tag values). Tags come in
    /// the order of their keys (as bytes, checked in debug builds): InfluxDB sorts the tags of
    /// every point that does not have them so, at a cost (its documentation asks writers to sort
    /// them; a drain's request bodies replayed with their tags sorted: InfluxDB's CPU -7 to -11 %).
    pub fn tag(mut self, key: &'static str, value: &str) -> Result<Self, LineProtocolError> {
        debug_assert!(is_plain_key(key) && self.fields == 0, "tag {key:?}");
        debug_assert!(
            key > self.last_tag,
            "tag {key:?} after {:?}: tags in the order of their keys",
            self.last_tag
        );
        self.last_tag = key;
        if value.is_empty() {
            return Ok(self);
        }
        if !tag_value_is_representable(value) {
            self.out.truncate(self.start);
            return Err(LineProtocolError::UnrepresentableTag {
                key: key.to_owned(),
                value: value.to_owned(),
            });
        }
        self.out.push(',');
        self.out.push_str(key);
        self.out.push('=');
        for c in value.chars() {
            if matches!(c, ',' | '=' | ' ') {
                self.out.push('\\');
            }
            self.out.push(c);
        }
        Ok(self)
    }

    /// Adds a string field.
    pub fn field_str(mut self, key: &str, value: &str) -> Self {
        self.field_key(key);
        self.out.push('"');
        for c in value.chars() {
            if matches!(c, '"' | '\\') {
                self.out.push('\\');
            }
            self.out.push(c);
        }
        self.out.push('"');
        self
    }

    /// Adds an integer field (`i` suffix).
    pub fn field_int(mut self, key: &str, value: i64) -> Self {
        self.field_key(key);
        let _ = write!(self.out, "{value}i");
        self
    }

    /// Adds a float field (non-finite values are left out: line protocol cannot carry them).
    pub fn field_float(mut self, key: &str, value: f64) -> Self {
        if value.is_finite() {
            self.field_key(key);
            // `{:?}` keeps a decimal point (`3.0`), so InfluxDB types the field as float.
            let _ = write!(self.out, "{value:?}");
        }
        self
    }

    /// Adds a boolean field.
    pub fn field_bool(mut self, key: &str, value: bool) -> Self {
        self.field_key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    /// Ends the point with its timestamp in nanoseconds and a newline.
    pub fn finish(self, timestamp_ns: i64) -> Result<(), LineProtocolError> {
        if self.fields == 0 {
            self.out.truncate(self.start);
            return Err(LineProtocolError::NoFields { measurement: self.measurement.to_owned() });
        }
        let _ = writeln!(self.out, " {timestamp_ns}");
        Ok(())
    }

    fn field_key(&mut self, key: &str) {
        debug_assert!(is_plain_key(key), "field {key:?}");
        self.out.push(if self.fields == 0 { ' ' } else { ',' });
        self.out.push_str(key);
        self.out.push('=');
        self.fields += 1;
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A backslash is literal in a tag value only when it neither ends the value nor precedes a
/// character the encoder escapes; control characters would end the line.
fn tag_value_is_representable(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| match b {
        b'\\' => !matches!(bytes.get(i + 1), None | Some(b',' | b'=' | b' ' | b'\\')),
        _ => !b.is_ascii_control(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(tags: &[(&'static str, &str)], fields: &[(&str, &str)]) -> Result<String, LineProtocolError> {
        let mut out = String::new();
        let mut p = PointBuilder::new(&mut out, "m");
        for (k, v) in tags {
            p = p.tag(k, v)?;
        }
        for (k, v) in fields {
            p = p.field_str(k, v);
        }
        p.finish(42)?;
        Ok(out)
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "tags in the order of their keys")]
    fn tags_out_of_key_order_are_refused_in_debug_builds() {
        let mut out = String::new();
        let _ = PointBuilder::new(&mut out, "m").tag("site", "a").and_then(|p| p.tag("hierarchy", "h"));
    }

    #[test]
    fn escapes_tags_and_string_fields() {
        let line = point(&[("a", "p q,r=s"), ("empty", "")], &[("f", "a\"b\\c"), ("g", "x=1 y")]);
        assert_eq!(line.unwrap(), "m,a=p\\ q\\,r\\=s f=\"a\\\"b\\\\c\",g=\"x=1 y\" 42\n");
    }

    #[test]
    fn floats_keep_their_point_and_non_finite_ones_are_left_out() {
        let mut out = String::new();
        let p = PointBuilder::new(&mut out, "m").field_float("a", 3.0).field_float("b", f64::NAN);
        p.field_float("c", 0.25).field_bool("d", true).finish(1).unwrap();
        assert_eq!(out, "m a=3.0,c=0.25,d=true 1\n");
    }

    #[test]
    fn newlines_stay_inside_the_string_field() {
        let line = point(&[], &[("f", "one\ntwo\r\nthree~~")]).unwrap();
        assert_eq!(line.matches('\n').count(), 3, "two inside the quotes, one ending the point");
        assert!(line.ends_with("three~~\" 42\n"));
    }

    #[test]
    fn refuses_tags_it_cannot_carry_and_leaves_no_partial_point() {
        for bad in ["x\\", "x\\,y", "a\nb", "a\rb", "x\\\\"] {
            let mut out = String::from("earlier 1\n");
            let err = PointBuilder::new(&mut out, "m").tag("t", bad).unwrap_err();
            assert!(matches!(err, LineProtocolError::UnrepresentableTag { .. }), "{bad:?}");
            assert_eq!(out, "earlier 1\n");
        }
        assert!(point(&[("t", "C:\\Logs")], &[("f", "v")]).is_ok());
    }

    #[test]
    fn a_point_needs_a_field() {
        let mut out = String::new();
        let p = PointBuilder::new(&mut out, "m").tag("t", "v").unwrap();
        assert!(p.finish(1).is_err());
        assert!(out.is_empty());
    }

    proptest::proptest! {
        /// Whatever the values, the encoded point is one line with exactly the structure asked
        /// for: unescaped separators appear only where the encoder put them.
        #[test]
        fn values_never_change_the_shape(tag in "(?s).{0,40}", field in "(?s).{0,40}") {
            if let Ok(line) = point(&[("t", &tag)], &[("f", &field), ("g", "x")]) {
                let (head, _ts) = line.trim_end_matches('\n').rsplit_once(' ').unwrap();
                // Tags are read up to the first unescaped space; quotes mean nothing there.
                let (series, fields) = split_first_unescaped(head, ' ');
                let tags = split_unescaped(series, ',', false);
                proptest::prop_assert_eq!(tags.len(), if tag.is_empty() { 1 } else { 2 }, "{}", line);
                if let Some(tag) = tags.get(1) {
                    proptest::prop_assert_eq!(split_unescaped(tag, '=', false).len(), 2, "{}", line);
                }
                let fields = split_unescaped(fields, ',', true);
                proptest::prop_assert_eq!(fields.len(), 2, "{}", line);
            }
        }
    }

    fn split_first_unescaped(s: &str, sep: char) -> (&str, &str) {
        let first = split_unescaped(s, sep, false).swap_remove(0);
        (&s[..first.len()], &s[first.len() + 1..])
    }

    /// Splits on `sep` not preceded by a backslash escape (and, in the field section, outside
    /// quotes), like InfluxDB's scanner.
    fn split_unescaped(s: &str, sep: char, quotes_matter: bool) -> Vec<String> {
        let mut parts = vec![String::new()];
        let (mut quoted, mut escaped) = (false, false);
        for c in s.chars() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' && quotes_matter {
                quoted = !quoted;
            } else if c == sep && !quoted {
                parts.push(String::new());
                continue;
            }
            parts.last_mut().unwrap().push(c);
        }
        parts
    }
}
