//! Internally tagged enums (`{"type": "...", ...fields}`) decoded without buffering.
//!
//! serde's `#[serde(tag = "type")]` cannot know where the tag is, so it copies every field of
//! the object into an intermediate tree first and decodes the variant from that: for the
//! consumer, a third of all its decoding time went to the event of each record. Every writer of
//! statmsg JSON puts the tag first (serde serializes it first), so this reads the first key; when
//! it is the tag, the rest of the object goes straight to the variant, through the externally
//! tagged twin of the enum (a `#[serde(remote)]` derive, [`ByVariant`]). An object whose tag comes
//! later still decodes, its fields kept as `serde_json::Value`s until the tag is found: slower,
//! and its strings are copied, never wrong. Either way it accepts and refuses what serde's derive
//! does (a test holds the two to that: unknown keys ignored, a repeated key refused), except
//! that only objects are read: the derive also took `["<type>", ...fields]`, which no writer
//! produces.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{BorrowedStrDeserializer, MapAccessDeserializer, MapDeserializer, StringDeserializer};
use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, Error, IgnoredAny, MapAccess, Unexpected, VariantAccess,
    Visitor,
};
use serde::forward_to_deserialize_any;

use crate::borrow::CowStr;

/// An enum decoded from a deserializer that presents it externally tagged (`deserialize_enum`,
/// then the variant's fields as a map).
pub(crate) trait ByVariant<'de>: Sized {
    /// What the enum is called in errors.
    const EXPECTING: &'static str;

    fn by_variant<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// Decodes `T` from an object whose key `tag` names the variant.
pub(crate) fn deserialize<'de, T: ByVariant<'de>, D: Deserializer<'de>>(
    d: D,
    tag: &'static str,
) -> Result<T, D::Error> {
    d.deserialize_map(TaggedVisitor { tag, wanted: PhantomData })
}

struct TaggedVisitor<T> {
    tag: &'static str,
    wanted: PhantomData<T>,
}

impl<'de, T: ByVariant<'de>> Visitor<'de> for TaggedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (an object with its `{}`)", T::EXPECTING, self.tag)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let Some(first) = map.next_key_seed(CowStr)? else {
            return Err(A::Error::missing_field(self.tag));
        };
        if first == self.tag {
            let variant = map.next_value_seed(CowStr)?;
            let fields = WithoutTag { map, tag: self.tag };
            return T::by_variant(Variant { name: variant, fields });
        }
        // The tag comes later: the fields are kept (repeated ones too, for the variant to refuse)
        // until it is found.
        let mut fields = Vec::new();
        let mut variant = None;
        let mut key = Some(first);
        while let Some(name) = key {
            if name != self.tag {
                fields.push((name.into_owned(), map.next_value::<serde_json::Value>()?));
            } else if variant.is_none() {
                variant = Some(map.next_value::<String>()?);
            } else {
                return Err(A::Error::duplicate_field(self.tag));
            }
            key = map.next_key_seed(CowStr)?;
        }
        let Some(variant) = variant else {
            return Err(A::Error::missing_field(self.tag));
        };
        let fields = MapDeserializer::<_, serde_json::Error>::new(fields.into_iter());
        T::by_variant(Variant { name: Cow::Owned(variant), fields }).map_err(A::Error::custom)
    }
}

/// `seed` given `text` as a string, borrowed if it is.
fn cow_into<'de, S: DeserializeSeed<'de>, E: Error>(text: Cow<'de, str>, seed: S) -> Result<S::Value, E> {
    match text {
        Cow::Borrowed(text) => seed.deserialize(BorrowedStrDeserializer::new(text)),
        Cow::Owned(text) => seed.deserialize(StringDeserializer::new(text)),
    }
}

/// The rest of an object whose tag was read first: the tag again is refused, as serde does.
struct WithoutTag<A> {
    map: A,
    tag: &'static str,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithoutTag<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        match self.map.next_key_seed(CowStr)? {
            None => Ok(None),
            Some(key) if key == self.tag => Err(A::Error::duplicate_field(self.tag)),
            Some(key) => cow_into(key, seed).map(Some),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A variant's name and the rest of its object, presented as an externally tagged enum.
struct Variant<'de, A> {
    name: Cow<'de, str>,
    fields: A,
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for Variant<'de, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_enum(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

impl<'de, A: MapAccess<'de>> EnumAccess<'de> for Variant<'de, A> {
    type Error = A::Error;
    type Variant = Fields<A>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Fields<A>), A::Error> {
        Ok((cow_into(self.name, seed)?, Fields(self.fields)))
    }
}

/// The fields of the variant: what remains of the object.
struct Fields<A>(A);

impl<'de, A: MapAccess<'de>> VariantAccess<'de> for Fields<A> {
    type Error = A::Error;

    fn unit_variant(mut self) -> Result<(), A::Error> {
        // As serde's internally tagged unit variants: other keys are ignored.
        while self.0.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    /// As serde's internally tagged newtype variants: the rest of the object is the value.
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        seed.deserialize(MapAccessDeserializer::new(self.0))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, A::Error> {
        Err(A::Error::invalid_type(Unexpected::Map, &"a unit, newtype or struct variant"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_map(self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;
    use serde_json::Value;

    use crate::event::{Event, Phase, ProgressStage, SerdeTagged, SiteList, Trigger, Wakeup};

    /// One event of every type, in the order of `Event::TYPE_NAMES`.
    fn one_of_each() -> Vec<Event<'static>> {
        let c = Cow::Borrowed;
        vec![
            Event::SyncWakeup { reason: Wakeup::InboxDrop },
            Event::SyncRequestFile {
                trigger: Trigger::Parent,
                file: Some(c("CS1.SYN")),
                parent: Some(c("CS1")),
                full: Some(true),
            },
            Event::SyncStarting,
            Event::SyncRequested { trigger: Trigger::Retry },
            Event::SupListRead { server: c("cm1") },
            Event::SupCount { count: 2 },
            Event::SupFound { server: c("sup1") },
            Event::PhaseStarted { phase: Phase::Replicas, server: None },
            Event::PhaseDone { phase: Phase::SiteDatabase, server: c("sup1") },
            Event::WsusSyncStarting { replica: true },
            Event::Progress {
                stage: ProgressStage::Sms,
                items: c("updates"),
                processed: Some(1),
                total: Some(9),
                percent: Some(11),
                eta_s: None,
            },
            Event::WaitingForWsusResults { seconds: 120 },
            Event::ContentVersionSet { update_source: c("{G}"), site: c("CS1"), version: 33 },
            Event::UpdateSynchronized { update_id: c("u"), title: c("KB1 \"quoted\""), kb: Some(1) },
            Event::SyncSucceeded { site: c("CS1") },
            Event::ItemsUpdated { items: 130, version: 34 },
            Event::SyncedWithParent { parent: c("CS1"), version: 34 },
            Event::SyncTime { seconds: 233 },
            Event::ChildrenNotified { sites: SiteList(c("PS1, PS2")) },
            Event::NotificationReplicated { file: c("C:\\inbox\\CS1.SYN"), sites: SiteList(c("PS1")) },
            Event::SyncFailed {
                message: c("WSUS server not configured"),
                source: Some(c("CWSyncMgr::DoSync")),
            },
            Event::RetryScheduled { minutes: 60 },
            Event::UpdateFailed { update_id: c("u"), message: c("m"), source: None },
            Event::SyncAborted,
            Event::CleanupDone { processed: 5, declined: 1 },
            Event::ExpiredUpdatesDeleting,
            Event::ExpiredUpdatesDeleted { count: 3 },
            Event::OrphanedContentDeleted { count: 4 },
            Event::SyncStatus { id: 6702, name: c("sync done") },
            Event::SymbolicStatus { name: c("NAME") },
            Event::WsusConfigState { state: 2, name: c("WSUS_CONFIG_SUCCESS") },
            Event::SyncNowRequested,
            Event::SyncNotificationReceived { request: c("SELF"), notification_id: 47788 },
            Event::SyncFileDropped {
                path: c("E:\\WSyncMgr.box\\SELF.SYN"),
                full: false,
                notification_id: 47788,
            },
            Event::WsusManualSyncStarted,
            Event::WsusEvent { event_id: 382, message: c("started") },
            Event::WsusSyncFinished,
        ]
    }

    /// `event`'s JSON entries (key, value as JSON), in the order serde writes them: `type` first.
    fn entries(event: &Event<'_>) -> Vec<(String, String)> {
        let written = serde_json::to_string(event).unwrap();
        let object: serde_json::Map<String, Value> = serde_json::from_str(&written).unwrap();
        let mut entries: Vec<_> = object.into_iter().map(|(k, v)| (k, v.to_string())).collect();
        entries.sort_by_key(|(key, _)| key != "type");
        entries
    }

    fn object(entries: &[(String, String)]) -> String {
        let parts: Vec<String> =
            entries.iter().map(|(k, v)| format!("{}:{v}", Value::from(k.as_str()))).collect();
        format!("{{{}}}", parts.join(","))
    }

    #[test]
    fn every_event_decodes_to_what_serde_encoded_whatever_the_place_of_its_type() {
        let events = one_of_each();
        assert_eq!(events.len(), Event::TYPE_NAMES.len());
        for (index, event) in events.iter().enumerate() {
            assert_eq!(event.type_index(), index, "{event:?}");
            // The writer's own order: the tag first.
            let written = serde_json::to_string(event).unwrap();
            assert!(written.starts_with("{\"type\":"), "{written}");
            assert_eq!(&serde_json::from_str::<Event<'_>>(&written).unwrap(), event, "{written}");
            // The tag last, and (with two fields or more) in the middle: the slow path.
            let (mut last, mut middle) = (entries(event), entries(event));
            last.rotate_left(1);
            let half = middle.len() / 2;
            middle.rotate_right(half);
            for json in [object(&last), object(&middle)] {
                assert_eq!(&serde_json::from_str::<Event<'_>>(&json).unwrap(), event, "{json}");
            }
            let value = serde_json::to_value(event).unwrap();
            assert_eq!(&<Event<'_> as serde::Deserialize>::deserialize(&value).unwrap(), event);
        }
    }

    /// JSON values to add or repeat keys with.
    const VALUES: [&str; 9] =
        ["null", "0", "7", "300", "-1", "\"s\"", "\"a\\\"b\"", "[1,{}]", "{\"a\":{\"b\":null}}"];

    proptest! {
        /// Whatever the order of its keys, with keys added or repeated: accepted and refused as
        /// serde's own internally tagged decoder of the same variants does, to the same event.
        #[test]
        fn decodes_as_serde_own_internally_tagged_enum_does(
            index in 0..Event::TYPE_NAMES.len(),
            ranks in proptest::collection::vec(any::<u8>(), 8),
            edits in proptest::collection::vec((0..4u8, any::<u8>()), 0..3),
        ) {
            let event = &one_of_each()[index];
            let mut entries = entries(event);
            for (edit, pick) in edits {
                let pick = usize::from(pick);
                let value = VALUES[pick % VALUES.len()].to_owned();
                match edit {
                    0 => entries.push((format!("note{}", pick % 3), value)),
                    1 => entries.push(entries[pick % entries.len()].clone()),
                    2 => entries.push((entries[pick % entries.len()].0.clone(), value)),
                    _ => entries.push(("type".into(), Value::from(Event::TYPE_NAMES[pick % Event::TYPE_NAMES.len()]).to_string())),
                }
            }
            let mut ranked: Vec<_> = entries.into_iter().enumerate().map(|(i, e)| ((ranks[i % 8], i), e)).collect();
            ranked.sort_by_key(|(rank, _)| *rank);
            let entries: Vec<_> = ranked.into_iter().map(|(_, e)| e).collect();
            let json = object(&entries);
            let ours = serde_json::from_str::<Event<'_>>(&json);
            let serde = serde_json::from_str::<SerdeTagged<'_>>(&json);
            prop_assert_eq!(ours.is_ok(), serde.is_ok(), "{}: ours {:?}, serde's {:?}", json, ours, serde);
            if let (Ok(ours), Ok(serde)) = (ours, serde) {
                prop_assert_eq!(serde_json::to_value(ours).unwrap(), serde_json::to_value(serde).unwrap(), "{}", json);
            }
        }
    }

    #[test]
    fn fields_borrow_from_the_input_when_the_type_comes_first() {
        let json = r#"{"type":"sync_failed","message":"plain","source":"also plain"}"#;
        let Event::SyncFailed { message, source } = serde_json::from_str(json).unwrap() else { panic!() };
        assert!(matches!((message, source), (Cow::Borrowed("plain"), Some(Cow::Borrowed("also plain")))));
    }

    #[test]
    fn a_bad_event_says_what_is_wrong() {
        let error = |json: &str| serde_json::from_str::<Event<'_>>(json).unwrap_err().to_string();
        for (json, says) in [
            (r#"{"type":"sync_exploded"}"#, "unknown variant `sync_exploded`"),
            (r#"{"seconds":3,"type":"sync_exploded"}"#, "unknown variant `sync_exploded`"),
            (r#"{"seconds":3}"#, "missing field `type`"),
            (r#"{}"#, "missing field `type`"),
            (r#"{"type":"sync_time"}"#, "missing field `seconds`"),
            (r#"{"type":"sync_time","seconds":"3"}"#, "invalid type: string"),
            (r#"{"type":7}"#, "invalid type: integer `7`"),
            (r#"["sync_starting"]"#, "invalid type: sequence"),
        ] {
            let error = error(json);
            assert!(error.contains(says), "{json}: {error}");
        }
        // As serde's own internally tagged enums: keys a variant does not have are ignored.
        let unit = r#"{"type":"sync_starting","note":{"nested":[1,2]},"more":null}"#;
        assert_eq!(serde_json::from_str::<Event<'_>>(unit).unwrap(), Event::SyncStarting);
        let tagged_late = r#"{"note":1,"seconds":3,"type":"sync_time"}"#;
        assert_eq!(serde_json::from_str::<Event<'_>>(tagged_late).unwrap(), Event::SyncTime { seconds: 3 });
    }
}
