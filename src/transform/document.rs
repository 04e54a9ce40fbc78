//! A rendered record opened for editing: its keys in order, each value kept as the JSON
//! text it was until an edit reaches into it.
//!
//! Pure. Only what a transform touches is parsed: removing `kubernetes.annotations` parses
//! the record's top level and the `kubernetes` object, while `log`, `data` and the rest are
//! copied back as they were. Key order is kept (serde_json's own map would sort it).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::record::write_json_str;

/// A JSON value, parsed only as deep as edits needed.
#[derive(Debug, Clone)]
pub enum Node {
    /// Not looked into: copied back verbatim.
    Raw(Box<RawValue>),
    /// A string, unescaped.
    Str(String),
    /// An object, its keys in their order.
    Object(Vec<(String, Node)>),
    /// An array.
    Array(Vec<Node>),
}

/// A record's top-level object.
#[derive(Debug, Clone)]
pub struct Document {
    entries: Vec<(String, Node)>,
}

impl Document {
    /// The record `json` (one JSON object); `None` if it is not one.
    pub fn parse(json: &[u8]) -> Option<Document> {
        let RawObject(entries) = serde_json::from_slice(json).ok()?;
        Some(Document {
            entries: entries
                .into_iter()
                .map(|(key, raw)| (key, Node::Raw(raw)))
                .collect(),
        })
    }

    /// Appends the record as one JSON object.
    pub fn write(&self, out: &mut Vec<u8>) {
        write_object(&self.entries, out);
    }

    /// Puts `value` at `path`, replacing what was there; missing objects on the way are
    /// made. Nothing happens if something on the way is not an object.
    pub fn insert(&mut self, path: &[String], value: Node) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut entries = &mut self.entries;
        for key in parents {
            let at = match entries.iter().position(|(k, _)| k == key) {
                Some(at) => at,
                None => {
                    entries.push((key.clone(), Node::Object(Vec::new())));
                    entries.len() - 1
                }
            };
            let node = &mut entries[at].1;
            node.expand();
            let Node::Object(inner) = node else { return };
            entries = inner;
        }
        match entries.iter_mut().find(|(k, _)| k == last) {
            Some((_, node)) => *node = value,
            None => entries.push((last.clone(), value)),
        }
    }

    /// Takes out the value at `path`, if there is one.
    pub fn remove(&mut self, path: &[String]) -> Option<Node> {
        let (last, parents) = path.split_last()?;
        let mut entries = &mut self.entries;
        for key in parents {
            let node = entries
                .iter_mut()
                .find(|(k, _)| k == key)
                .map(|(_, node)| node)?;
            node.expand();
            let Node::Object(inner) = node else {
                return None;
            };
            entries = inner;
        }
        let at = entries.iter().position(|(k, _)| k == last)?;
        Some(entries.remove(at).1)
    }

    /// The value at `path`, opened one level (a string unescaped, an object's keys listed).
    pub fn get_mut(&mut self, path: &[String]) -> Option<&mut Node> {
        let (first, rest) = path.split_first()?;
        let mut node = self
            .entries
            .iter_mut()
            .find(|(k, _)| k == first)
            .map(|(_, node)| node)?;
        for key in rest {
            node.expand();
            let Node::Object(inner) = node else {
                return None;
            };
            node = inner
                .iter_mut()
                .find(|(k, _)| k == key)
                .map(|(_, node)| node)?;
        }
        node.expand();
        Some(node)
    }
}

impl Node {
    /// A string value.
    pub fn string(text: impl Into<String>) -> Node {
        Node::Str(text.into())
    }

    /// Parses a raw value one level: a string unescaped, an object's or array's members
    /// listed (each still raw). Numbers, booleans and null stay raw.
    fn expand(&mut self) {
        let Node::Raw(raw) = self else { return };
        let text = raw.get();
        let expanded = match text.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<String>(text).ok().map(Node::Str),
            Some(b'{') => serde_json::from_str::<RawObject>(text).ok().map(|object| {
                Node::Object(
                    object
                        .0
                        .into_iter()
                        .map(|(k, v)| (k, Node::Raw(v)))
                        .collect(),
                )
            }),
            Some(b'[') => serde_json::from_str::<Vec<Box<RawValue>>>(text)
                .ok()
                .map(|items| Node::Array(items.into_iter().map(Node::Raw).collect())),
            _ => None,
        };
        if let Some(expanded) = expanded {
            *self = expanded;
        }
    }

    /// Calls `edit` on every string in this value (itself, or inside it at any depth).
    pub fn for_each_string(&mut self, edit: &mut dyn FnMut(&mut String)) {
        self.expand();
        match self {
            Node::Str(text) => edit(text),
            Node::Object(entries) => entries
                .iter_mut()
                .for_each(|(_, node)| node.for_each_string(edit)),
            Node::Array(items) => items.iter_mut().for_each(|node| node.for_each_string(edit)),
            Node::Raw(_) => {}
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Node::Raw(raw) => out.extend_from_slice(raw.get().as_bytes()),
            Node::Str(text) => write_json_str(out, text),
            Node::Object(entries) => write_object(entries, out),
            Node::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
        }
    }
}

fn write_object(entries: &[(String, Node)], out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (key, node)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, key);
        out.push(b':');
        node.write(out);
    }
    out.push(b'}');
}

/// An object's members in order, each value still JSON text.
struct RawObject(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawObjectVisitor)
    }
}

struct RawObjectVisitor;

impl<'de> Visitor<'de> for RawObjectVisitor {
    type Value = RawObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
            entries.push(entry);
        }
        Ok(RawObject(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<RawObject, A::Error> {
        Err(serde::de::Error::custom("expected a JSON object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(dotted: &str) -> Vec<String> {
        dotted.split('.').map(str::to_owned).collect()
    }

    fn rewrite(json: &str, edit: impl FnOnce(&mut Document)) -> String {
        let mut doc = Document::parse(json.as_bytes()).unwrap();
        edit(&mut doc);
        let mut out = Vec::new();
        doc.write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_untouched_record_is_written_back_byte_for_byte() {
        let json =
            r#"{"time":"t","log":"a \"q\" \u00e9","data":{"z":1,"a":[1,{"b":null}]},"n":1.50}"#;
        assert_eq!(rewrite(json, |_| {}), json);
    }

    #[test]
    fn removing_a_nested_key_keeps_the_order_of_the_rest() {
        let json = r#"{"time":"t","kubernetes":{"pod_name":"p","annotations":{"a":"b"},"host":"h"},"topic":"x"}"#;
        let out = rewrite(json, |doc| {
            assert!(doc.remove(&path("kubernetes.annotations")).is_some());
            assert!(doc.remove(&path("kubernetes.missing")).is_none());
            assert!(doc.remove(&path("topic.deeper")).is_none());
        });
        assert_eq!(
            out,
            r#"{"time":"t","kubernetes":{"pod_name":"p","host":"h"},"topic":"x"}"#
        );
    }

    #[test]
    fn inserting_replaces_an_existing_key_and_makes_missing_objects() {
        let json = r#"{"time":"t","data":{"msg":"hi"}}"#;
        let out = rewrite(json, |doc| {
            let msg = doc.remove(&path("data.msg")).unwrap();
            doc.insert(&path("message"), msg);
            doc.insert(&path("time"), Node::string("u"));
            doc.insert(&path("a.b"), Node::string("c"));
        });
        assert_eq!(
            out,
            r#"{"time":"u","data":{},"message":"hi","a":{"b":"c"}}"#
        );
    }

    #[test]
    fn every_string_inside_a_value_is_reached_and_nothing_else() {
        let json = r#"{"log":"k=1","data":{"a":"k=2","n":3,"l":["k=3",{"d":"k=4"}],"t":true}}"#;
        let out = rewrite(json, |doc| {
            for field in ["log", "data"] {
                let node = doc.get_mut(&path(field)).unwrap();
                node.for_each_string(&mut |text| *text = text.replace("k=", "K:\""));
            }
        });
        assert_eq!(
            out,
            r#"{"log":"K:\"1","data":{"a":"K:\"2","n":3,"l":["K:\"3",{"d":"K:\"4"}],"t":true}}"#
        );
    }
}
