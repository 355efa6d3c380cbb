//! Random requests of any message type, built from the API's descriptors. Most values are
//! plausible for their field's name (known ids, real time zones, times near the clock), so calls get
//! past their first check and reach the stores; `hostility` is the chance that any one value is
//! hostile instead: NUL bytes, megabyte strings, extreme numbers, times and durations at and past
//! protobuf's limits, unknown enum values, long lists.

use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage, Value,
};

/// Seconds of 2026-03-02T00:00:00Z, where the test clock starts.
const NEAR: i64 = 1_772_409_600;

/// Builds random requests, remembering ids the services hand out to use them in later requests.
pub struct Generator {
    pub rng: fastrand::Rng,
    /// Contact ids seen in answers, to name existing contacts.
    contacts: Vec<String>,
    /// Conversation ids seen in answers.
    conversations: Vec<String>,
    hostility: f64,
    /// The names of the fields a FieldMask in the current request may name.
    mask_paths: Vec<String>,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            contacts: Vec::new(),
            conversations: Vec::new(),
            hostility: 0.0,
            mask_paths: Vec::new(),
        }
    }

    /// A request of type `desc`, each value hostile with probability `hostility`.
    pub fn request(&mut self, desc: &MessageDescriptor, hostility: f64) -> DynamicMessage {
        self.hostility = hostility;
        self.mask_paths = desc
            .fields()
            .filter_map(|field| match field.kind() {
                Kind::Message(inner) => Some(inner),
                _ => None,
            })
            .flat_map(|inner| {
                inner
                    .fields()
                    .map(|f| f.name().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        self.message(desc, "", 0)
    }

    /// Remembers the contact and conversation ids of an answer.
    pub fn learn(&mut self, message: &DynamicMessage) {
        for (field, value) in message.fields() {
            match value {
                Value::String(id) if !id.is_empty() => {
                    let pool = match field.name() {
                        "contact_id" => &mut self.contacts,
                        "conversation_id" => &mut self.conversations,
                        _ => continue,
                    };
                    if pool.len() < 64 {
                        pool.push(id.clone());
                    } else {
                        let slot = self.rng.usize(..pool.len());
                        pool[slot] = id.clone();
                    }
                }
                Value::Message(inner) => self.learn(inner),
                Value::List(items) => {
                    for item in items {
                        if let Value::Message(inner) = item {
                            self.learn(inner);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// A plausible request of type `desc` with exactly one value made hostile: the sharpest
    /// probe, as every other field is good enough to get the request to where that value is used.
    pub fn request_with_one_hostile_value(&mut self, desc: &MessageDescriptor) -> DynamicMessage {
        let mut message = self.request(desc, 0.0);
        let leaves = leaves(&message);
        if leaves > 0 {
            self.hostility = 1.0;
            let mut target = self.rng.usize(..leaves);
            self.spoil(&mut message, &mut target);
            self.hostility = 0.0;
        }
        message
    }

    /// Makes the `target`th leaf of `message` (in `leaves` order) hostile; true once done.
    fn spoil(&mut self, message: &mut DynamicMessage, target: &mut usize) -> bool {
        for (field, value) in message.fields_mut() {
            if self.spoil_value(&field, value, target) {
                return true;
            }
        }
        false
    }

    fn spoil_value(
        &mut self,
        field: &FieldDescriptor,
        value: &mut Value,
        target: &mut usize,
    ) -> bool {
        match value {
            Value::List(items) => items
                .iter_mut()
                .any(|item| self.spoil_value(field, item, target)),
            Value::Map(map) => {
                let Kind::Message(entry) = field.kind() else {
                    return false;
                };
                let keys: Vec<MapKey> = map.keys().cloned().collect();
                for key in keys {
                    if *target == 0 {
                        let value = map.remove(&key).expect("a key of the map");
                        if let MapKey::String(_) = key {
                            let key = self.hostile_string(&format!("{}.key", field.name()));
                            map.insert(MapKey::String(key), value);
                        }
                        return true;
                    }
                    *target -= 1;
                    let inner = map.get_mut(&key).expect("a key of the map");
                    if self.spoil_value(&entry.map_entry_value_field(), inner, target) {
                        return true;
                    }
                }
                false
            }
            Value::Message(inner) if !is_leaf_message(inner) => self.spoil(inner, target),
            _ if *target > 0 => {
                *target -= 1;
                false
            }
            Value::Message(inner) => {
                let desc = inner.descriptor();
                *inner = self.message(&desc, field.name(), 0);
                true
            }
            _ => {
                *value = self.single(field, field.name(), 0);
                true
            }
        }
    }

    fn hostile(&mut self) -> bool {
        self.hostility > 0.0 && self.rng.f64() < self.hostility
    }

    fn pick<T: Clone>(&mut self, choices: &[T]) -> T {
        choices[self.rng.usize(..choices.len())].clone()
    }

    fn message(&mut self, desc: &MessageDescriptor, name: &str, depth: usize) -> DynamicMessage {
        match desc.full_name() {
            "google.protobuf.Timestamp" => return self.timestamp(desc, name),
            "google.protobuf.Duration" => return self.duration(desc),
            "google.protobuf.FieldMask" => return self.field_mask(desc),
            _ => {}
        }
        let mut message = DynamicMessage::new(desc.clone());
        if depth > 4 {
            return message;
        }
        for field in desc.fields() {
            if self.rng.f64() < 0.1 {
                continue;
            }
            let value = if field.is_map() {
                self.map(&field, depth)
            } else if field.is_list() {
                if self.hostile() {
                    // A long list of plausible values (hostile ones in it would make it huge).
                    let hostility = std::mem::take(&mut self.hostility);
                    let length = self.pick(&[150, 2_000]);
                    let list = (0..length)
                        .map(|_| self.single(&field, field.name(), depth))
                        .collect();
                    self.hostility = hostility;
                    Value::List(list)
                } else {
                    let length = self.rng.usize(0..=2);
                    Value::List(
                        (0..length)
                            .map(|_| self.single(&field, field.name(), depth))
                            .collect(),
                    )
                }
            } else {
                self.single(&field, field.name(), depth)
            };
            message.set_field(&field, value);
        }
        message
    }

    fn map(&mut self, field: &FieldDescriptor, depth: usize) -> Value {
        let Kind::Message(entry) = field.kind() else {
            unreachable!("a map field is a message of entries")
        };
        let (key_field, value_field) = (entry.map_entry_key_field(), entry.map_entry_value_field());
        let long = self.hostile();
        let hostility = self.hostility;
        if long {
            self.hostility = 0.0;
        }
        let length = if long { 150 } else { self.rng.usize(0..=2) };
        let mut map = std::collections::HashMap::new();
        for _ in 0..length {
            let key = match self.single(&key_field, &format!("{}.key", field.name()), depth) {
                Value::String(text) => MapKey::String(text),
                Value::I32(n) => MapKey::I32(n),
                Value::I64(n) => MapKey::I64(n),
                Value::U32(n) => MapKey::U32(n),
                Value::U64(n) => MapKey::U64(n),
                Value::Bool(b) => MapKey::Bool(b),
                other => unreachable!("not a map key: {other:?}"),
            };
            let value = self.single(&value_field, field.name(), depth);
            map.insert(key, value);
        }
        self.hostility = hostility;
        Value::Map(map)
    }

    fn single(&mut self, field: &FieldDescriptor, name: &str, depth: usize) -> Value {
        match field.kind() {
            Kind::String => Value::String(self.string(name)),
            Kind::Bytes => Value::Bytes(
                (0..self.rng.usize(0..32))
                    .map(|_| self.rng.u8(..))
                    .collect(),
            ),
            Kind::Bool => Value::Bool(self.rng.bool()),
            Kind::Double => Value::F64(self.double()),
            Kind::Float => Value::F32(self.double() as f32),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(self.int32(name)),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(self.int64()),
            Kind::Uint32 | Kind::Fixed32 => Value::U32(self.uint32()),
            Kind::Uint64 | Kind::Fixed64 => Value::U64(self.uint64()),
            Kind::Enum(values) => {
                let number = if self.hostile() {
                    self.pick(&[-1, i32::MIN, i32::MAX, 999])
                } else {
                    // Mostly a specified value; UNSPECIFIED (0) now and then.
                    let specified: Vec<i32> = values
                        .values()
                        .map(|v| v.number())
                        .filter(|n| *n != 0)
                        .collect();
                    if specified.is_empty() || self.rng.f64() < 0.1 {
                        0
                    } else {
                        self.pick(&specified)
                    }
                };
                Value::EnumNumber(number)
            }
            Kind::Message(desc) => Value::Message(self.message(&desc, name, depth + 1)),
        }
    }

    fn string(&mut self, name: &str) -> String {
        if self.hostile() {
            self.hostile_string(name)
        } else {
            self.plausible_string(name)
        }
    }

    fn plausible_string(&mut self, name: &str) -> String {
        let name = name.trim_end_matches(".key");
        let known = if name.ends_with("contact_id") {
            Some(self.contacts.clone())
        } else if name == "conversation_id" {
            Some(self.conversations.clone())
        } else if name == "request_id" || name == "page_token" {
            Some(Vec::new())
        } else {
            None
        };
        if let Some(known) = known {
            // Mostly an existing resource; else a new UUID, or none.
            return match self.rng.u8(..10) {
                0..=6 if !known.is_empty() => self.pick(&known),
                0..=8 => uuid::Uuid::from_u128(self.rng.u128(..)).to_string(),
                _ => String::new(),
            };
        }
        let choices: &[&str] = match name {
            "email" => &["ana@example.com", ""],
            "phone" => &["+34600123456", ""],
            "language" => &["es", "pt-BR", ""],
            "time_zone" => &[
                "UTC",
                "America/Guayaquil",
                "Asia/Kolkata",
                "Asia/Kathmandu",
                "",
            ],
            "first_name" | "last_name" | "name" => &["Ana", "Susana", " Li ", ""],
            "category" | "closing_category" | "closing_categories" => &["Resolved", "Spam", ""],
            "summary" | "closing_summary" => &["Solved by phone", ""],
            "tags" | "tag" => &["vip", "lead"],
            "custom_fields" => &["plan", "order_id"],
            "paths" => &[],
            "channel_id" | "channel_ids" => &["wa-main", "bot"],
            _ => &["agent-1", "team-a", "wamid.1", "x", "ext-7"],
        };
        if name == "paths" && !self.mask_paths.is_empty() {
            return self.pick(&self.mask_paths.clone());
        }
        self.pick(choices).to_owned()
    }

    fn hostile_string(&mut self, name: &str) -> String {
        match self.rng.u8(..14) {
            0 => "a\0b".into(),
            1 => "\0".into(),
            // A value the field would take, but for its NUL.
            2..=4 => {
                let mut value = self.plausible_string(name);
                value.insert(self.rng.usize(..=value.len()), '\0');
                value
            }
            5 => "x".repeat(10_000),
            6 => "ñ".repeat(300),
            7 => "🙂".repeat(70),
            8 => "   ".into(),
            9 => "\u{202e}\u{200b}\n\t".into(),
            10 => "'; DROP TABLE contacts; --".into(),
            11 => "%00%s%n".into(),
            // A megabyte now and then: its echo must not overflow an error's trailers.
            12 if self.rng.u8(..4) == 0 => "y".repeat(1 << 20),
            _ => "0".repeat(257),
        }
    }

    fn double(&mut self) -> f64 {
        if self.hostile() {
            self.pick(&[
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::MAX,
                -0.0,
                f64::MIN_POSITIVE,
            ])
        } else {
            self.pick(&[0.0, 1.0, 42.5, -3.0])
        }
    }

    fn int32(&mut self, name: &str) -> i32 {
        if self.hostile() {
            return self.pick(&[i32::MIN, -1, i32::MAX, 1_001, 101]);
        }
        match name {
            "page_size" => self.pick(&[0, 1, 10, 1_000]),
            "limit" => self.pick(&[0, 5, 100]),
            _ => self.rng.i32(0..10),
        }
    }

    fn int64(&mut self) -> i64 {
        if self.hostile() {
            self.pick(&[i64::MIN, -1, i64::MAX])
        } else {
            self.rng.i64(0..100)
        }
    }

    fn uint32(&mut self) -> u32 {
        if self.hostile() {
            self.pick(&[u32::MAX, 1, 64])
        } else {
            0
        }
    }

    fn uint64(&mut self) -> u64 {
        if self.hostile() {
            self.pick(&[u64::MAX, i64::MAX as u64 + 1, i64::MAX as u64])
        } else {
            self.rng.u64(0..5)
        }
    }

    fn timestamp(&mut self, desc: &MessageDescriptor, name: &str) -> DynamicMessage {
        let (seconds, nanos) = if self.hostile() {
            (
                self.pick(&[
                    i64::MIN,
                    i64::MAX,
                    -62_135_596_801,
                    -62_135_596_800,
                    253_402_300_799,
                    253_402_300_800,
                    -1,
                    0,
                ]),
                self.pick(&[0, -1, 1_000_000_000, i32::MAX, i32::MIN, 999_999_999]),
            )
        } else {
            // Within a month of the clock's start (a range's start before it, its end after),
            // mostly on a quarter hour (reports ask for quarter-hour edges).
            let offset = match name {
                "start_time" | "opened_after" => self.rng.i64(-30 * 86_400..0),
                "end_time" | "opened_before" => self.rng.i64(0..30 * 86_400),
                _ => self.rng.i64(-30 * 86_400..30 * 86_400),
            };
            let seconds = NEAR + offset;
            if self.rng.f64() < 0.8 {
                (seconds - seconds.rem_euclid(900), 0)
            } else {
                (seconds, self.rng.i32(0..1_000_000_000))
            }
        };
        seconds_and_nanos(desc, seconds, nanos)
    }

    fn duration(&mut self, desc: &MessageDescriptor) -> DynamicMessage {
        let (seconds, nanos) = if self.hostile() {
            (
                self.pick(&[i64::MIN, i64::MAX, -1, 315_576_000_001, -315_576_000_000, 0]),
                self.pick(&[0, -1, 1_000_000_000, i32::MAX, i32::MIN, -999_999_999]),
            )
        } else {
            (
                self.pick(&[0, 1_800, 3_600, 7_200, 14 * 86_400, 86_400 * 400]),
                0,
            )
        };
        seconds_and_nanos(desc, seconds, nanos)
    }

    fn field_mask(&mut self, desc: &MessageDescriptor) -> DynamicMessage {
        let mut mask = DynamicMessage::new(desc.clone());
        let count = self.rng.usize(0..=2);
        let paths = (0..count)
            .map(|_| Value::String(self.string("paths")))
            .collect();
        mask.set_field_by_name("paths", Value::List(paths));
        mask
    }
}

fn seconds_and_nanos(desc: &MessageDescriptor, seconds: i64, nanos: i32) -> DynamicMessage {
    let mut message = DynamicMessage::new(desc.clone());
    message.set_field_by_name("seconds", Value::I64(seconds));
    message.set_field_by_name("nanos", Value::I32(nanos));
    message
}

/// Timestamps and durations are single values, however they are encoded.
fn is_leaf_message(message: &DynamicMessage) -> bool {
    matches!(
        message.descriptor().full_name(),
        "google.protobuf.Timestamp" | "google.protobuf.Duration"
    )
}

/// The values of `message` one may spoil: scalars, timestamps, durations and map keys, in the
/// order `Generator::spoil` walks them.
fn leaves(message: &DynamicMessage) -> usize {
    message.fields().map(|(_, value)| value_leaves(value)).sum()
}

fn value_leaves(value: &Value) -> usize {
    match value {
        Value::List(items) => items.iter().map(value_leaves).sum(),
        Value::Map(map) => map.values().map(|value| 1 + value_leaves(value)).sum(),
        Value::Message(inner) if !is_leaf_message(inner) => leaves(inner),
        _ => 1,
    }
}
