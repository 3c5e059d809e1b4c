//! Internally tagged enums (`{"type": "...", ...fields}`) decoded without buffering.
//!
//! serde's `#[serde(tag = "type")]` cannot know where the tag is, so it copies every field of
//! the object into an intermediate tree first and decodes the variant from that: for the
//! consumer, a third of all its decoding time went to the event of each record. Every writer of
//! statmsg JSON puts the tag first (serde serializes it first), so this reads the first key; when
//! it is the tag, the rest of the object goes straight to the variant, through the externally
//! tagged twin of the enum (a `#[serde(remote)]` derive, [`ByVariant`]). An object whose tag comes
//! later still decodes, through a `serde_json::Value`: slower, never wrong.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
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
            return T::by_variant(Variant { name: variant, fields: map });
        }
        // The tag comes later: the fields are kept until it is found.
        let mut fields = serde_json::Map::new();
        let mut variant = None;
        let mut key = Some(first);
        while let Some(name) = key {
            if name == self.tag {
                variant = Some(map.next_value::<String>()?);
            } else {
                fields.insert(name.into_owned(), map.next_value()?);
            }
            key = map.next_key_seed(CowStr)?;
        }
        let Some(variant) = variant else {
            return Err(A::Error::missing_field(self.tag));
        };
        let known = KnownVariant::<T> { variant, wanted: PhantomData };
        serde_json::Value::Object(fields).deserialize_map(known).map_err(A::Error::custom)
    }
}

/// The fields of an object whose tag was already read, as a map.
struct KnownVariant<T> {
    variant: String,
    wanted: PhantomData<T>,
}

impl<'de, T: ByVariant<'de>> Visitor<'de> for KnownVariant<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the fields of {}", T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::by_variant(Variant { name: Cow::Owned(self.variant), fields: map })
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
        let variant = match self.name {
            Cow::Borrowed(name) => seed.deserialize(BorrowedStrDeserializer::new(name))?,
            Cow::Owned(name) => seed.deserialize(StringDeserializer::new(name))?,
        };
        Ok((variant, Fields(self.fields)))
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

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, A::Error> {
        Err(A::Error::invalid_type(Unexpected::Map, &"a unit or struct variant"))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, A::Error> {
        Err(A::Error::invalid_type(Unexpected::Map, &"a unit or struct variant"))
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

    use serde_json::Value;

    use crate::event::{Event, Phase, ProgressStage, SiteList, Trigger, Wakeup};

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

    /// `value`'s object written with its keys in `order` (indexes into its keys as serialized).
    fn object_in_order(value: &Value, order: impl Fn(usize) -> Vec<usize>) -> String {
        let json = serde_json::to_string(value).unwrap();
        let Value::Object(fields) = value else { panic!("{json}") };
        let fields: Vec<_> = fields.iter().collect();
        let parts: Vec<String> = order(fields.len())
            .into_iter()
            .map(|i| format!("{}:{}", Value::from(fields[i].0.as_str()), fields[i].1))
            .collect();
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
            // Any other order (serde_json's map sorts keys; "type" lands anywhere in it).
            let value = serde_json::to_value(event).unwrap();
            let reversed = object_in_order(&value, |n| (0..n).rev().collect());
            let rotated = object_in_order(&value, |n| (0..n).map(|i| (i + n / 2) % n).collect());
            for json in [reversed, rotated] {
                assert_eq!(&serde_json::from_str::<Event<'_>>(&json).unwrap(), event, "{json}");
            }
            assert_eq!(&<Event<'_> as serde::Deserialize>::deserialize(&value).unwrap(), event);
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
