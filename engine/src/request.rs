//! Decision requests as plain Rust values: who (subject), what (action), on what (resource) and
//! in which context. Built directly by embedders or deserialized from the JSON request format.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The text type of requests: strings of up to 24 bytes (most actions, role names, subject
/// ids, context keys and values) are stored inline, so reading a request touches fewer
/// cache lines and decoding one allocates less. Built from `&str` and `String` with
/// `.into()`, read as `&str` (it derefs to `str`, and compares with `str` and `String`).
///
/// ```
/// use pdp_engine::Text;
///
/// let id: Text = "alice".into();
/// assert_eq!(id, "alice");
/// assert_eq!(id.as_str().len(), 5);
/// assert!(id.starts_with("al"));
/// assert_eq!(String::from(id), "alice");
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[repr(transparent)]
pub struct Text(compact_str::CompactString);

impl Text {
    /// Text from anything that reads as a `str`.
    pub fn new(text: impl AsRef<str>) -> Self {
        Text(compact_str::CompactString::new(text))
    }

    /// The text as a `str`.
    #[inline]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The text with ASCII letters in lower case (short text stays inline).
    fn folded(&self) -> Text {
        Text(self.0.to_ascii_lowercase())
    }

    /// The text as a `String` (no copy when it is held on the heap).
    pub fn into_string(self) -> String {
        self.0.into_string()
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Text {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Text(text.into())
    }
}

impl From<&String> for Text {
    fn from(text: &String) -> Self {
        Text(text.as_str().into())
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Text(text.into())
    }
}

impl From<Box<str>> for Text {
    fn from(text: Box<str>) -> Self {
        Text(text.into())
    }
}

impl From<std::borrow::Cow<'_, str>> for Text {
    fn from(text: std::borrow::Cow<'_, str>) -> Self {
        Text(text.into())
    }
}

impl From<&Text> for Text {
    fn from(text: &Text) -> Self {
        text.clone()
    }
}

impl From<Text> for String {
    fn from(text: Text) -> Self {
        text.into_string()
    }
}

impl std::str::FromStr for Text {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(s.into())
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

/// A subject's roles: up to two inline (most subjects hold one or two), so reading them does
/// not reach into another allocation. Built from a `Vec` or an array of [`Text`] with
/// `.into()`, from an iterator with `.collect()`, or with [`Roles::push`]; read as a slice
/// of [`Text`].
///
/// ```
/// use pdp_engine::{Roles, Text};
///
/// let mut roles: Roles = vec!["Reader".into()].into();
/// roles.push("Writer");
/// assert_eq!(roles.len(), 2);
/// assert!(roles.iter().any(|r| r == "Writer"));
/// let names: Roles = ["a", "b"].into_iter().map(Text::from).collect();
/// assert_eq!(names.first().map(Text::as_str), Some("a"));
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Roles(smallvec::SmallVec<[Text; 2]>);

impl Roles {
    /// No roles.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a role.
    pub fn push(&mut self, role: impl Into<Text>) {
        self.0.push(role.into());
    }

    /// Keeps only the roles for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Text) -> bool) {
        self.0.retain(|role| keep(role));
    }

    /// Removes every role.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The roles as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[Text] {
        self.0.as_slice()
    }
}

impl std::ops::Deref for Roles {
    type Target = [Text];

    #[inline]
    fn deref(&self) -> &[Text] {
        self.0.as_slice()
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Text>> for Roles {
    fn from(roles: Vec<Text>) -> Self {
        Roles(roles.into())
    }
}

impl<const N: usize> From<[Text; N]> for Roles {
    fn from(roles: [Text; N]) -> Self {
        roles.into_iter().collect()
    }
}

impl From<&[Text]> for Roles {
    fn from(roles: &[Text]) -> Self {
        Roles(roles.into())
    }
}

impl FromIterator<Text> for Roles {
    fn from_iter<I: IntoIterator<Item = Text>>(iter: I) -> Self {
        Roles(iter.into_iter().collect())
    }
}

impl Extend<Text> for Roles {
    fn extend<I: IntoIterator<Item = Text>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl<'a> IntoIterator for &'a Roles {
    type Item = &'a Text;
    type IntoIter = std::slice::Iter<'a, Text>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for Roles {
    type Item = Text;
    type IntoIter = RolesIntoIter;

    fn into_iter(self) -> RolesIntoIter {
        RolesIntoIter(self.0.into_iter())
    }
}

/// The roles of a [`Roles`], by value.
pub struct RolesIntoIter(smallvec::IntoIter<[Text; 2]>);

impl fmt::Debug for RolesIntoIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RolesIntoIter")
            .field(&self.0.as_slice())
            .finish()
    }
}

impl Iterator for RolesIntoIter {
    type Item = Text;

    fn next(&mut self) -> Option<Text> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for RolesIntoIter {
    fn next_back(&mut self) -> Option<Text> {
        self.0.next_back()
    }
}

impl ExactSizeIterator for RolesIntoIter {}

/// A decision request: may `subject` perform `action` on `resource`, given `context`?
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The verified identity asking.
    #[serde(default)]
    pub subject: Subject,
    /// The action, `service:Name` (matched case-insensitively).
    pub action: Text,
    /// The resource acted on.
    #[serde(default)]
    pub resource: Resource,
    /// Other facts about the request (condition keys), e.g. `aws:SourceIp`.
    #[serde(default)]
    pub context: Context,
    /// The clock for `aws:CurrentTime` / `aws:EpochTime`; the system clock when `None`.
    #[serde(skip)]
    pub now: Option<DateTime<Utc>>,
}

/// The identity a request is made for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// Subject id: `aws:username`, `aws:userid`, and the key of `subjects` bindings.
    #[serde(default)]
    pub id: Text,
    /// Roles the subject holds; each role's bound policies apply.
    #[serde(default)]
    pub roles: Roles,
    /// Principal tags: `aws:PrincipalTag/<key>`.
    #[serde(default)]
    pub tags: Tags,
}

/// The resource a request acts on.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// Resource id, usually an ARN; matched against `Resource` patterns (case-sensitive).
    #[serde(default)]
    pub id: Text,
    /// Resource tags: `aws:ResourceTag/<key>`.
    #[serde(default)]
    pub tags: Tags,
}

/// Tags (of a subject or a resource): keys mapped to values, kept sorted by key with each
/// key once, like a `BTreeMap<Text, Text>`, in one small allocation: a request holds a
/// handful of tags, and a decision reading one touches a single run of memory instead of a
/// tree node's scattered keys, values and length. Built with `.collect()` or `.into()` from
/// `(Text, Text)` pairs (of a key given twice, the last wins), from a `BTreeMap`, or with
/// [`Tags::insert`]; read with [`Tags::get`] and by iterating (in key order).
///
/// ```
/// use pdp_engine::Tags;
///
/// let mut tags: Tags = [("team", "data"), ("env", "dev"), ("team", "ops")]
///     .into_iter()
///     .map(|(k, v)| (k.into(), v.into()))
///     .collect();
/// assert_eq!(tags.get("team").map(|v| v.as_str()), Some("ops"));
/// tags.insert("env", "prod");
/// let keys: Vec<&str> = tags.keys().map(|k| k.as_str()).collect();
/// assert_eq!(keys, ["env", "team"]);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<(Text, Text)>);

impl Tags {
    /// No tags.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`; returns the value it replaces, if any. Each insert moves the
    /// tags after `key`: to build many tags at once, collect them instead.
    pub fn insert(&mut self, key: impl Into<Text>, value: impl Into<Text>) -> Option<Text> {
        let key = key.into();
        let value = value.into();
        match self.position(&key) {
            Ok(at) => self
                .0
                .get_mut(at)
                .map(|slot| std::mem::replace(&mut slot.1, value)),
            Err(at) => {
                self.0.insert(at, (key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value, if it was there.
    pub fn remove(&mut self, key: &str) -> Option<Text> {
        let at = self.position(key).ok()?;
        Some(self.0.remove(at).1)
    }

    /// The value of `key` (compared exactly).
    pub fn get(&self, key: &str) -> Option<&Text> {
        let at = self.position(key).ok()?;
        self.0.get(at).map(|(_, v)| v)
    }

    /// The value of `key`, or else of the first key (in key order) equal to it but for ASCII
    /// case: how a condition key's tag name finds a tag.
    pub(crate) fn get_ignore_ascii_case(&self, key: &str) -> Option<&Text> {
        self.get(key).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// Whether `key` is there (compared exactly).
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// The tags in key order.
    pub fn iter(&self) -> TagsIter<'_> {
        fn pair((k, v): &(Text, Text)) -> (&Text, &Text) {
            (k, v)
        }
        self.0.iter().map(pair)
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &Text> {
        self.0.iter().map(|(k, _)| k)
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Tags from pairs in any order: sorted once (stably, so of a key given twice the last
    /// wins), in `O(n log n)` however many there are.
    fn from_pairs(mut pairs: Vec<(Text, Text)>) -> Self {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        // `dedup_by` keeps the first of a run and passes the later one first: move the
        // later value into the kept entry so that the last wins.
        pairs.dedup_by(|later, kept| {
            if later.0 == kept.0 {
                std::mem::swap(&mut later.1, &mut kept.1);
                true
            } else {
                false
            }
        });
        Tags(pairs)
    }
}

/// Iterator over [`Tags`] in key order.
pub type TagsIter<'a> = std::iter::Map<
    std::slice::Iter<'a, (Text, Text)>,
    fn(&'a (Text, Text)) -> (&'a Text, &'a Text),
>;

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(Text, Text)> for Tags {
    fn from_iter<I: IntoIterator<Item = (Text, Text)>>(iter: I) -> Self {
        Tags::from_pairs(iter.into_iter().collect())
    }
}

impl<const N: usize> From<[(Text, Text); N]> for Tags {
    fn from(pairs: [(Text, Text); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<K: Into<Text>, V: Into<Text>> From<std::collections::BTreeMap<K, V>> for Tags {
    fn from(map: std::collections::BTreeMap<K, V>) -> Self {
        map.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
    }
}

impl IntoIterator for Tags {
    type Item = (Text, Text);
    type IntoIter = std::vec::IntoIter<(Text, Text)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = (&'a Text, &'a Text);
    type IntoIter = TagsIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Serialize for Tags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// Reads a map's entries in the order given (a key given twice kept twice) and makes a
/// `T` of them.
struct MapVisitor<K, V, T> {
    expecting: &'static str,
    make: fn(Vec<(K, V)>) -> T,
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>, T> Visitor<'de> for MapVisitor<K, V, T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok((self.make)(entries))
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MapVisitor {
            expecting: "a map of tag keys to string values",
            make: Tags::from_pairs,
        })
    }
}

/// A single context value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    String(Text),
    /// A number (integers are exact up to 2^53).
    Number(f64),
    /// A boolean.
    Bool(bool),
}

/// A context value: a scalar, or a list of scalars for a multivalued key.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A single-valued key.
    One(Scalar),
    /// A multivalued key (`ForAnyValue:` / `ForAllValues:`).
    Many(Vec<Scalar>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::One(Scalar::String(s.into()))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::One(Scalar::String(s.into()))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::One(Scalar::Bool(b))
    }
}
impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::One(Scalar::Number(n))
    }
}
impl From<i64> for Value {
    #[allow(clippy::cast_precision_loss)]
    fn from(n: i64) -> Self {
        Value::One(Scalar::Number(n as f64))
    }
}
impl From<Vec<&str>> for Value {
    fn from(v: Vec<&str>) -> Self {
        Value::Many(v.into_iter().map(|s| Scalar::String(s.into())).collect())
    }
}

/// Condition-key facts of a request. Keys are compared case-insensitively, as IAM does.
/// Kept as a small vector: contexts hold a handful of keys, and a scan with an ASCII
/// case-insensitive compare is cheaper than hashing a lower-cased copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context(Vec<(Text, Value)>);

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces, case-insensitively) a key.
    pub fn insert(&mut self, key: impl Into<Text>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        if let Some(slot) = self
            .0
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(&key))
        {
            *slot = (key, value);
        } else {
            self.0.push((key, value));
        }
    }

    /// A context from entries; of keys equal but for ASCII case, the last wins (in linear
    /// time, so a large hostile context costs no more than reading it).
    fn from_entries(entries: Vec<(Text, Value)>) -> Self {
        if entries.len() <= 16 {
            let mut c = Context::new();
            for (k, v) in entries {
                c.insert(k, v);
            }
            return c;
        }
        let mut last: std::collections::HashMap<Text, usize> = std::collections::HashMap::new();
        for (i, (k, _)) in entries.iter().enumerate() {
            last.insert(k.folded(), i);
        }
        let kept = entries
            .into_iter()
            .enumerate()
            .filter(|(i, (k, _))| last.get(&k.folded()) == Some(i))
            .map(|(_, e)| e)
            .collect();
        Context(kept)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &Value) -> bool) {
        self.0.retain(|(k, v)| keep(k, v));
    }

    /// Builder form of [`Context::insert`].
    #[must_use]
    pub fn with(mut self, key: impl Into<Text>, value: impl Into<Value>) -> Self {
        self.insert(key, value);
        self
    }

    /// The value of `key`, compared case-insensitively.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| {
                k.len() == key.len()
                    && (crate::pattern::bytes_eq(k.as_bytes(), key.as_bytes())
                        || k.eq_ignore_ascii_case(key))
            })
            .map(|(_, v)| v)
    }

    /// All entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<Text>, V: Into<Value>> FromIterator<(K, V)> for Context {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Context::from_entries(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl Serialize for Scalar {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scalar::String(v) => s.serialize_str(v),
            Scalar::Number(v) => s.serialize_f64(*v),
            Scalar::Bool(v) => s.serialize_bool(*v),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::One(v) => v.serialize(s),
            Value::Many(v) => v.serialize(s),
        }
    }
}

impl Serialize for Context {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

const VALUE_EXPECTED: &str = "a string, number, boolean, or a list of them";

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    #[allow(clippy::cast_precision_loss)]
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v as f64))
    }
    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        if v.is_finite() {
            Ok(Scalar::Number(v))
        } else {
            Err(E::custom("numbers must be finite"))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::String(v.into()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::String(v.into()))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(VALUE_EXPECTED)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        ScalarVisitor.visit_bool(v).map(Value::One)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        ScalarVisitor.visit_i64(v).map(Value::One)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        ScalarVisitor.visit_u64(v).map(Value::One)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        ScalarVisitor.visit_f64(v).map(Value::One)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::One(Scalar::String(v.into())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::One(Scalar::String(v.into())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element::<Scalar>()? {
            out.push(v);
        }
        Ok(Value::Many(out))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ContextVisitor;

impl<'de> Visitor<'de> for ContextVisitor {
    type Value = Context;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of condition keys to values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Context, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(key) = map.next_key::<Text>()? {
            // A bad value names its key. The format's own position (`at line …`), if it
            // wrote one, is left for the format to add once, after the key.
            let value = map.next_value::<Value>().map_err(|e| {
                let text = e.to_string();
                let detail = text.split(" at line ").next().unwrap_or(&text);
                de::Error::custom(format!("context key `{key}`: {detail}"))
            })?;
            entries.push((key, value));
        }
        Ok(Context::from_entries(entries))
    }
}

impl<'de> Deserialize<'de> for Context {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ContextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keys_are_case_insensitive() {
        let c = Context::new().with("aws:SourceIp", "10.0.0.1");
        assert_eq!(c.get("AWS:sourceip"), Some(&Value::from("10.0.0.1")));
    }

    #[test]
    fn request_json_parses_lists_and_scalars() -> Result<(), serde_json::Error> {
        let r: Request = serde_json::from_str(
            r#"{"subject":{"id":"alice","roles":["R"]},"action":"s3:GetObject",
                "resource":{"id":"arn:aws:s3:::b/k"},
                "context":{"a":1,"b":true,"c":["x","y"],"d":"s"}}"#,
        )?;
        assert_eq!(r.context.len(), 4);
        assert_eq!(
            r.context.get("c"),
            Some(&Value::Many(vec![
                Scalar::String("x".into()),
                Scalar::String("y".into())
            ]))
        );
        Ok(())
    }

    #[test]
    fn a_bad_context_value_names_its_key() {
        let e = serde_json::from_str::<Request>(
            r#"{"subject":{"id":"a"},"action":"s3:GetObject","resource":{"id":"r"},
                "context":{"ok":1,"a:b":{"nested":1}}}"#,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.starts_with("context key `a:b`: invalid type: map"), "{e}");
        assert_eq!(e.matches(" at line ").count(), 1, "{e}");
    }

    #[test]
    fn large_contexts_keep_the_last_of_each_key() -> Result<(), serde_json::Error> {
        let mut json = String::from("{");
        for i in 0..40 {
            json.push_str(&format!("\"k{i}\": {i}, "));
        }
        json.push_str("\"K7\": \"last\"}");
        let c: Context = serde_json::from_str(&json)?;
        assert_eq!(c.len(), 40);
        assert_eq!(c.get("k7"), Some(&Value::from("last")));
        assert_eq!(c.get("k8"), Some(&Value::from(8i64)));
        Ok(())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(Text, Text)> {
        list.iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn tags_keep_key_order_and_the_last_value_of_a_key() {
        let tags: Tags = pairs(&[("team", "a"), ("env", "dev"), ("team", "b"), ("app", "x")])
            .into_iter()
            .collect();
        let listed: Vec<(&str, &str)> =
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(listed, [("app", "x"), ("env", "dev"), ("team", "b")]);
        // The same tags in another order, or inserted one by one, are equal.
        let mut inserted = Tags::new();
        for (k, v) in [("team", "a"), ("app", "x"), ("env", "dev")] {
            assert_eq!(inserted.insert(k, v), None);
        }
        assert_eq!(inserted.insert("team", "b").as_deref(), Some("a"));
        assert_eq!(inserted, tags);
        assert_eq!(inserted.remove("app").as_deref(), Some("x"));
        assert_eq!(inserted.remove("app"), None);
        assert_eq!(inserted.len(), 2);
        assert!(!inserted.contains_key("app") && inserted.contains_key("env"));
        // As a `BTreeMap` would hold them.
        let map: std::collections::BTreeMap<String, String> = [
            ("team".into(), "b".into()),
            ("app".into(), "x".into()),
            ("env".into(), "dev".into()),
        ]
        .into();
        assert_eq!(Tags::from(map), tags);
    }

    #[test]
    fn tags_lookup_prefers_the_exact_key_then_the_first_equal_but_for_case() {
        let tags: Tags = pairs(&[("Env", "upper"), ("env", "lower"), ("TEAM", "t")])
            .into_iter()
            .collect();
        assert_eq!(tags.get("env").map(Text::as_str), Some("lower"));
        assert_eq!(tags.get("ENV"), None);
        assert_eq!(
            tags.get_ignore_ascii_case("ENV").map(Text::as_str),
            Some("upper")
        );
        assert_eq!(
            tags.get_ignore_ascii_case("team").map(Text::as_str),
            Some("t")
        );
        assert_eq!(tags.get_ignore_ascii_case("owner"), None);
    }

    #[test]
    fn tags_are_a_json_object_and_of_a_repeated_key_the_last_wins() -> Result<(), serde_json::Error>
    {
        let tags: Tags = serde_json::from_str(r#"{"team": "a", "env": "dev", "team": "b"}"#)?;
        assert_eq!(tags.get("team").map(Text::as_str), Some("b"));
        assert_eq!(serde_json::to_string(&tags)?, r#"{"env":"dev","team":"b"}"#);
        assert_eq!(format!("{tags:?}"), r#"{"env": "dev", "team": "b"}"#);
        assert!(serde_json::from_str::<Tags>(r#"{"team": 1}"#).is_err());
        // Many keys in reverse order: sorted once, every key found.
        let json = format!(
            "{{{}}}",
            (0..5000)
                .rev()
                .map(|i| format!("\"k{i:05}\": \"{i}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let many: Tags = serde_json::from_str(&json)?;
        assert_eq!(many.len(), 5000);
        assert!(many.keys().zip(many.keys().skip(1)).all(|(a, b)| a < b));
        assert_eq!(many.get("k04321").map(Text::as_str), Some("4321"));
        Ok(())
    }

    #[test]
    fn nested_lists_and_nulls_are_rejected() {
        assert!(serde_json::from_str::<Context>(r#"{"a":[[1]]}"#).is_err());
        assert!(serde_json::from_str::<Context>(r#"{"a":null}"#).is_err());
    }
}
