//! Strings borrowed from the input where serde's derive would copy them.
//!
//! `#[serde(borrow)]` borrows only a field that is itself a `Cow<str>`: inside an `Option` or an
//! array, serde deserializes each `Cow` through its own impl, which always allocates. A consumer
//! decodes every envelope of a backlog, so those copies (the record's time, component and file
//! identity, a status message's ten `ISTR`s) were a good part of its decoding time; these
//! deserializers borrow whatever the input holds unescaped and copy only escaped strings.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error, SeqAccess, Visitor};

/// A string, borrowed when the input allows.
pub(crate) fn cow<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, str>, D::Error> {
    CowStr.deserialize(d)
}

/// An optional string (`null` is `None`), borrowed when the input allows. An absent field is an
/// error unless the field also says `#[serde(default)]`, as every field using this does.
pub(crate) fn option<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    d.deserialize_option(OptionCowStr)
}

/// A fixed number of strings, each borrowed when the input allows.
pub(crate) fn array<'de: 'a, 'a, D: Deserializer<'de>, const N: usize>(
    d: D,
) -> Result<[Cow<'a, str>; N], D::Error> {
    d.deserialize_tuple(N, ArrayCowStr::<N>)
}

/// Visits a string as a `Cow`, and is its own seed (for the elements of an array).
pub(crate) struct CowStr;

impl<'de> DeserializeSeed<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

struct OptionCowStr;

impl<'de> Visitor<'de> for OptionCowStr {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }

    fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        CowStr.deserialize(d).map(Some)
    }
}

struct ArrayCowStr<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for ArrayCowStr<N> {
    type Value = [Cow<'de, str>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of {N} strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out: [Cow<'de, str>; N] = std::array::from_fn(|_| Cow::Borrowed(""));
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = seq.next_element_seed(CowStr)?.ok_or_else(|| Error::invalid_length(i, &self))?;
        }
        if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
            return Err(Error::invalid_length(N + 1, &self));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default, deserialize_with = "option")]
        maybe: Option<Cow<'a, str>>,
        #[serde(borrow, deserialize_with = "array")]
        three: [Cow<'a, str>; 3],
        #[serde(borrow, deserialize_with = "cow")]
        one: Cow<'a, str>,
    }

    #[allow(clippy::ptr_arg)] // whether it borrows is the point
    fn borrowed(c: &Cow<'_, str>) -> bool {
        matches!(c, Cow::Borrowed(_))
    }

    #[test]
    fn unescaped_strings_are_borrowed_escaped_ones_copied() {
        let json = r#"{"maybe":"a","three":["x","y\"","z"],"one":"o\\n"}"#;
        let p: Probe<'_> = serde_json::from_str(json).unwrap();
        assert_eq!(p.maybe.as_deref(), Some("a"));
        assert!(borrowed(p.maybe.as_ref().unwrap()));
        assert_eq!(p.three, ["x", "y\"", "z"]);
        assert!(borrowed(&p.three[0]) && !borrowed(&p.three[1]) && borrowed(&p.three[2]));
        assert_eq!(p.one, "o\\n");
        assert!(!borrowed(&p.one));
    }

    #[test]
    fn null_absent_and_wrong_shapes() {
        let p: Probe<'_> = serde_json::from_str(r#"{"maybe":null,"three":["","",""],"one":""}"#).unwrap();
        assert_eq!(p.maybe, None);
        let p: Probe<'_> = serde_json::from_str(r#"{"three":["","",""],"one":""}"#).unwrap();
        assert_eq!(p.maybe, None);
        for bad in [
            r#"{"three":["",""],"one":""}"#,
            r#"{"three":["","","",""],"one":""}"#,
            r#"{"three":["","",1],"one":""}"#,
            r#"{"maybe":3,"three":["","",""],"one":""}"#,
            r#"{"three":["","",""],"one":null}"#,
        ] {
            assert!(serde_json::from_str::<Probe<'_>>(bad).is_err(), "{bad}");
        }
    }
}
